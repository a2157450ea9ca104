"""The live view of the run in progress: a progress bar with the time left, the loss and accuracy curves."""

from __future__ import annotations

import statistics

from textual.app import ComposeResult
from textual.clock import Clock
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, Static
from textual_plotext import PlotextPlot

FAINT = (110, 110, 130)
REDRAWS_PER_SECOND = 4


class Curves:
    """Per-round series by epoch, and their means: what the plots draw."""

    def __init__(self) -> None:
        self.loss: dict[int, dict[int, float]] = {}
        self.train_acc: dict[int, dict[int, float]] = {}
        self.test_acc: dict[int, dict[int, float]] = {}

    def add(self, rec) -> None:
        get = rec.get if isinstance(rec, dict) else lambda k: getattr(rec, k)
        r, e = int(get("round")), int(get("epoch"))
        self.loss.setdefault(r, {})[e] = get("train_loss")
        self.train_acc.setdefault(r, {})[e] = get("train_acc")
        self.test_acc.setdefault(r, {})[e] = get("test_acc")

    @staticmethod
    def mean(series: dict[int, dict[int, float]]) -> tuple[list[int], list[float]]:
        epochs = sorted({e for by_epoch in series.values() for e in by_epoch})
        means = [statistics.fmean(s[e] for s in series.values() if e in s) for e in epochs]
        return epochs, means

    def __len__(self) -> int:
        return sum(len(s) for s in self.loss.values())


def draw_curves(loss_plot: PlotextPlot, acc_plot: PlotextPlot, curves: Curves, title: str = "") -> None:
    plt = loss_plot.plt
    plt.clear_data()
    plt.clear_figure()
    plt.title(f"train loss{(' · ' + title) if title else ''}")
    plt.xlabel("epoch")
    for series in curves.loss.values():
        epochs = sorted(series)
        if epochs:
            plt.plot(epochs, [series[e] for e in epochs], color=FAINT, marker="dot")
    epochs, means = Curves.mean(curves.loss)
    if epochs:
        plt.plot(epochs, means, color="cyan+", marker="braille", label="mean")
        plt.xticks(epoch_ticks(epochs))
    loss_plot.refresh()

    plt = acc_plot.plt
    plt.clear_data()
    plt.clear_figure()
    plt.title("accuracy % (mean over rounds)")
    plt.xlabel("epoch")
    for series in curves.test_acc.values():
        epochs = sorted(series)
        if epochs:
            plt.plot(epochs, [series[e] * 100 for e in epochs], color=FAINT, marker="dot")
    for series, color, label in ((curves.train_acc, "orange+", "train"), (curves.test_acc, "green+", "test")):
        epochs, means = Curves.mean(series)
        if epochs:
            plt.plot(epochs, [m * 100 for m in means], color=color, marker="braille", label=label)
            plt.xticks(epoch_ticks(epochs))
    acc_plot.refresh()


def epoch_ticks(epochs: list[int]) -> list[int]:
    """Whole epochs, at most six ticks."""
    last = max(epochs)
    step = max(1, -(-last // 6))
    return list(range(1, last + 1, step))


class LiveView(Vertical):
    """Shows the run in progress; redraws at most a few times a second, whatever the record rate."""

    def __init__(self, clock: Clock | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock or Clock()
        self.curves = Curves()
        self.dirty = False
        self.title = ""
        self.started = 0.0

    def compose(self) -> ComposeResult:
        with Horizontal(id="live-head"):
            yield Label("idle: press ctrl+r to run the form's configuration", id="live-title")
            yield ProgressBar(id="live-progress", show_eta=True, clock=self.clock)
        yield Static("", id="live-status")
        with Horizontal(id="live-plots"):
            yield PlotextPlot(id="loss-plot")
            yield PlotextPlot(id="acc-plot")

    def on_mount(self) -> None:
        self.query_one("#live-progress").display = False  # idle: no bar (an empty one animates forever)
        self.set_interval(1 / REDRAWS_PER_SECOND, self.redraw)
        self.redraw(force=True)

    def start(self, title: str, total: int) -> None:
        self.curves = Curves()
        self.title = title
        self.started = self.clock.time
        self.query_one("#live-title", Label).update(f"[b]{title}[/b]")
        bar = self.query_one("#live-progress", ProgressBar)
        bar.display = True
        bar.update(total=total, progress=0)
        self.query_one("#live-status", Static).update("starting…")
        self.dirty = True

    def add(self, records: list) -> None:
        for rec in records:
            self.curves.add(rec)
        self.query_one("#live-progress", ProgressBar).update(progress=len(self.curves))
        if records:
            last = records[-1]
            epochs, test = Curves.mean(self.curves.test_acc)
            self.query_one("#live-status", Static).update(
                f"epoch {epochs[-1]} · test {test[-1] * 100:.1f}% (mean of {len(self.curves.test_acc)} rounds) · "
                f"lr {last.lr:.2e} · {self.clock.time - self.started:.0f}s")
        self.dirty = True

    def finish(self, status: str, line: str) -> None:
        self.query_one("#live-title", Label).update(f"[b]{self.title}[/b]: {status}")
        self.query_one("#live-status", Static).update(line)
        self.dirty = True

    def redraw(self, force: bool = False) -> None:
        if self.dirty or force:
            self.dirty = False
            draw_curves(self.query_one("#loss-plot", PlotextPlot), self.query_one("#acc-plot", PlotextPlot),
                        self.curves)
