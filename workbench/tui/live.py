"""The live view of the run in progress: a progress bar with the time left, the loss and accuracy curves."""

from __future__ import annotations

import statistics

from textual.app import ComposeResult
from textual.clock import Clock
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import ProgressBar
from textual_plotext import PlotextPlot

FAINT = (110, 110, 130)  # every round's own curve; legible on light and dark backgrounds
TRAIN_COLOR = (230, 140, 20)
TEST_COLOR = (40, 170, 90)
MEAN_COLOR = (30, 150, 220)
# Drawing competes with training for the interpreter and the cores: text and bar twice a second,
# the plots once (a redraw of both plots costs about 0.1 s of CPU here).
TEXT_EVERY_S = 0.5
PLOTS_EVERY_S = 1.0


class StatusLine(Widget):
    """One line of text whose updates never relayout the screen (a Static's do)."""

    DEFAULT_CSS = "StatusLine { height: 1; }"
    text = reactive("", layout=False)

    def render(self) -> str:
        return self.text


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
        plt.plot(epochs, means, color=MEAN_COLOR, marker="braille", label="mean")
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
    for series, color, label in ((curves.train_acc, TRAIN_COLOR, "train"), (curves.test_acc, TEST_COLOR, "test")):
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
        self.plots_dirty = False
        self.text_dirty = False
        self.title = ""
        self.headline = "idle: press ctrl+r to run the form's configuration"
        self.status = ""
        self.total = 0
        self.started = 0.0

    def compose(self) -> ComposeResult:
        yield StatusLine(id="live-title")
        yield ProgressBar(id="live-progress", show_eta=True, clock=self.clock)
        yield StatusLine(id="live-status")
        with Horizontal(id="live-plots"):
            yield PlotextPlot(id="loss-plot")
            yield PlotextPlot(id="acc-plot")

    def on_mount(self) -> None:
        self.query_one("#live-progress").display = False  # idle: no bar (an empty one animates forever)
        self.set_interval(TEXT_EVERY_S, self.update_text)
        self.set_interval(PLOTS_EVERY_S, self.redraw)
        self.update_text(force=True)
        self.redraw(force=True)

    def start(self, title: str, total: int) -> None:
        self.curves = Curves()
        self.title = title
        self.total = total
        self.started = self.clock.time
        self.headline = f"[b]{title}[/b]"
        self.status = "starting…"
        bar = self.query_one("#live-progress", ProgressBar)
        bar.display = True
        bar.update(total=total, progress=0)
        self.text_dirty = self.plots_dirty = True
        self.update_text()

    def add(self, records: list) -> None:
        """Take records; drawing waits for the next tick."""
        for rec in records:
            self.curves.add(rec)
        if records:
            last = records[-1]
            epochs, test = Curves.mean(self.curves.test_acc)
            self.status = (f"epoch {epochs[-1]} · test {test[-1] * 100:.1f}% (mean of {len(self.curves.test_acc)} "
                           f"rounds) · lr {last.lr:.2e} · {self.clock.time - self.started:.0f}s")
        self.text_dirty = self.plots_dirty = True

    def finish(self, status: str, line: str) -> None:
        self.headline = f"[b]{self.title}[/b]: {status}"
        self.status = line
        self.text_dirty = self.plots_dirty = True
        self.update_text()
        self.redraw()

    def update_text(self, force: bool = False) -> None:
        if self.text_dirty or force:
            self.text_dirty = False
            self.query_one("#live-title", StatusLine).text = self.headline
            self.query_one("#live-status", StatusLine).text = self.status
            if self.total:
                self.query_one("#live-progress", ProgressBar).update(progress=len(self.curves))

    def redraw(self, force: bool = False) -> None:
        if self.plots_dirty or force:
            self.plots_dirty = False
            draw_curves(self.query_one("#loss-plot", PlotextPlot), self.query_one("#acc-plot", PlotextPlot),
                        self.curves)
