"""The live view of the run in progress: a progress bar with the time left, the loss and accuracy curves."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.binding import Binding
from textual.clock import Clock
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import ProgressBar
from textual_plotext import PlotextPlot

from workbench.analysis.curves import Curves
from workbench.format import StepRate, pct
from workbench.tui.text import markup

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


class Legend(StatusLine):
    """The runs in view, one colour each: as many lines as their names need."""

    DEFAULT_CSS = "Legend { height: auto; max-height: 3; }"
    text = reactive("", layout=True)


# One colour per config in the live view, distinct on dark and light backgrounds.
RUN_COLORS = [(30, 150, 220), (230, 140, 20), (40, 170, 90), (210, 60, 60), (160, 100, 220), (150, 120, 60),
              (220, 100, 180), (90, 180, 190)]


def band_color(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """The colour of a run's ± std band: the run's colour, halfway to grey."""
    return tuple((c + 128) // 2 for c in color)


def plot_band(plt, epochs: list[int], means: list[float], stds: list[float], color, scale: float = 1.0,
              top: float | None = None):
    """A mean line and its ± std band (two dotted lines): the spread over rounds, not only its centre. The band
    stays within what the figure can be (0 and `top`: a fraction's 1), so an axis never reads 106 %."""
    if any(s > 0 for s in stds):
        faint = band_color(color)
        high = [m + s if top is None else min(m + s, top) for m, s in zip(means, stds)]
        plt.plot(epochs, [h * scale for h in high], color=faint, marker="dot")
        plt.plot(epochs, [max(m - s, 0.0) * scale for m, s in zip(means, stds)], color=faint, marker="dot")
    plt.plot(epochs, [m * scale for m in means], color=color, marker="braille")


def draw_curves(loss_plot: PlotextPlot, acc_plot: PlotextPlot, curves: Curves, title: str = "",
                view: CurveView | None = None) -> None:
    """One run: its train loss and its train and test accuracy, each mean over rounds with a ± std band."""
    draw_runs(loss_plot, acc_plot, [(title, curves, MEAN_COLOR)], with_train=True, view=view)


BANDS_UP_TO = 3  # runs; beyond, the bands hide each other and only the means are drawn


def draw_runs(loss_plot: PlotextPlot, acc_plot: PlotextPlot, runs: list[tuple[str, Curves, tuple]],
              with_train: bool = False, view: CurveView | None = None) -> None:
    """Several runs overlaid, one colour each (or one run's train and test accuracy, `with_train`); in a `wall`
    view against the seconds each run has trained (its own clock: runs trained together share one)."""
    axes = [c.time_axis() for _, c, _ in runs] if view is not None and view.wall else None  # summed only when drawn
    plot_metric(loss_plot, "train loss", [(label or "mean", c.loss, color) for label, c, color in runs], view=view,
                axes=axes)
    if with_train:  # the key in the title: a legend inside the plot sat over the curves' ends
        series = [(name, getattr(c, attr), color) for _, c, _ in runs
                  for name, attr, color in (("train", "train_acc", TRAIN_COLOR), ("test", "test_acc", TEST_COLOR))]
        plot_metric(acc_plot, "accuracy %", series, 100.0, view=view, key="test green, train orange",
                    axes=None if axes is None else [axis for axis in axes for _ in range(2)])
    else:
        plot_metric(acc_plot, "test accuracy %", [(label, c.test_acc, color) for label, c, color in runs], 100.0,
                    view=view, axes=axes)


ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colours in what plotext builds


def fit_title(plot: PlotextPlot, title: str, extra: str = "") -> None:
    """A plot's title, shortened until it shows at the plot's size: plotext drops a title wider than its canvas
    (beside the y axis's labels), and with it what the plot shows. `extra` (a colour key) goes first, whole.
    Call it once the data is plotted."""
    plt = plot.plt
    candidates = [f"{title} · {extra}"] if extra else []
    candidates += [title] + [title[:cut].rstrip() + "…" for cut in range(len(title) - 2, 6, -2)]
    plt.title(candidates[0])
    width, height = plot.size.width, plot.size.height
    if width <= 0 or height <= 0:
        return
    plt.plotsize(width, height)
    for candidate in candidates:
        plt.title(candidate)
        if candidate in ANSI.sub("", plt.build()):
            return


@dataclass
class CurveView:
    """How the live view and the compare screen draw curves: smoothed (an EMA factor, 0 for none), the loss on a
    log scale, every round's line instead of the mean and its band, against wall time instead of epochs."""

    smooth: float = 0.0
    log: bool = False
    per_round: bool = False
    wall: bool = False  # against seconds trained instead of epochs: what a setting costs

    def suffix(self, log_here: bool) -> str:
        parts = [f"EMA {self.smooth:g}"] if self.smooth else []
        parts += ["log scale"] if self.log and log_here else []
        return "".join(f" · {p}" for p in parts)


def plot_metric(plot: PlotextPlot, title: str, series: list[tuple[str, dict, tuple]], scale: float = 1.0,
                view: CurveView | None = None, log_here: bool = False, key: str = "",
                axes: list[dict[int, float]] | None = None) -> None:
    """One metric, one line per (label, per-round series by epoch, colour): the mean over rounds, and up to
    BANDS_UP_TO lines ± std over rounds as a dotted band; or, in a view with per_round, every round's line. No
    legend inside the plot (it sat over the curves' last epochs): the view's legend line names each colour.
    In a view with `wall`, each line is drawn against its own time axis (`axes`, one per series:
    Curves.time_axis), and an epoch with no clocked time is left out."""
    view = view or CurveView()
    log = view.log and log_here
    spread = len(series) <= BANDS_UP_TO and not log
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    wall = view.wall and axes is not None
    plt.xlabel("seconds trained" if wall else "epoch")
    last, ys = 0, []

    def drawn(values: list[float]) -> list[float]:
        """Values as plotted: scaled, and as log10 on a log scale (ticks labelled in the values below: plotext's
        own log scale breaks when a plot is built twice)."""
        out = [v * scale for v in values]
        out = [math.log10(v) if v > 0 else math.nan for v in out] if log else out
        ys.extend(v for v in out if math.isfinite(v))
        return out

    for index, (label, by_round, color) in enumerate(series):
        by_round = Curves.smoothed(by_round, view.smooth)
        axis = axes[index] if wall else None
        if view.per_round:
            for k, (_, by_epoch) in enumerate(sorted(by_round.items())):
                epochs = sorted(e for e in by_epoch if by_epoch[e] is not None)
                epochs, xs, (values,) = on_axis(epochs, axis, [by_epoch[e] for e in epochs])
                if xs:
                    plt.plot(xs, drawn(values), color=color, marker="braille")
                    last = max(last, epochs[-1])
            continue
        epochs, means, stds = Curves.mean_std(by_round)
        epochs, xs, (means, stds) = on_axis(epochs, axis, means, stds)
        if epochs and log:
            plt.plot(xs, drawn(means), color=color, marker="braille")
        elif epochs:
            drawn(means)
            plot_band(plt, xs, means, stds if spread else [0.0] * len(stds), color, scale,
                      top=1.0 if scale == 100.0 else None)
        last = max([last, *epochs])
    if last and not wall:
        plt.xticks(epoch_ticks(list(range(1, last + 1))))
    if log and ys and max(ys) > min(ys):
        ticks = [min(ys) + (max(ys) - min(ys)) * k / 4 for k in range(5)]
        plt.yticks(ticks, [f"{10 ** t:.3g}" for t in ticks])
    what = "every round" if view.per_round else ("mean ± std over rounds" if spread else "mean over rounds")
    fit_title(plot, f"{title}: {what}{view.suffix(log_here)}", key)
    plot.refresh()


def on_axis(epochs: list[int], axis: dict[int, float] | None, *columns: list[float]) -> tuple[list, list, list]:
    """Points as drawn: the epochs kept, where each goes (the epoch itself, or the seconds trained by its end on a
    time axis, which leaves out an epoch it has no time for), and each column's values at them."""
    kept = [k for k, e in enumerate(epochs) if axis is None or e in axis]
    epochs = [epochs[k] for k in kept]
    return epochs, epochs if axis is None else [axis[e] for e in epochs], [[c[k] for k in kept] for c in columns]


def epoch_ticks(epochs: list[int]) -> list[int]:
    """Whole epochs, at most six ticks."""
    last = max(epochs)
    step = max(1, -(-last // 6))
    return list(range(1, last + 1, step))


@dataclass
class LiveRun:
    title: str
    total: int  # epochs over all rounds
    color: tuple[int, int, int]
    curves: Curves = field(default_factory=Curves)
    status: str = "starting"  # starting, training, done, cancelled, failed

    @property
    def ended(self) -> bool:
        return self.status in ("done", "cancelled", "failed")


class LiveView(Vertical, can_focus=True):
    """The runs in training, and those that ended since the view was last idle, overlaid in one colour each;
    redraws at most a few times a second, whatever the record rate. A cancelled or finished run stays in view
    while the queue goes on, and the view starts afresh when a run starts after everything had ended."""

    BINDINGS = [Binding("w", "wall_time", "Wall time", tooltip="Draw the curves against seconds trained, or epochs")]

    def __init__(self, clock: Clock | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view = CurveView()
        self.clock = clock or Clock()
        self.runs: dict[int, LiveRun] = {}
        self.plots_dirty = False
        self.text_dirty = False
        self.headline = "idle: press ctrl+r to run the form's configuration"
        self.status = ""
        self.rate = StepRate(0)
        self.continuing = False  # the queue goes on after a run ended: keep the ended runs in view

    @property
    def curves(self) -> Curves:
        """The curves of the run that started last."""
        return next(reversed(self.runs.values())).curves if self.runs else Curves()

    def compose(self) -> ComposeResult:
        yield Legend(id="live-title")
        yield ProgressBar(id="live-progress", show_eta=False, clock=self.clock)
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

    def start(self, title: str, total: int, run_id: int | None = None, prior: list | tuple = ()) -> None:
        """A run begins (a continued one with the epochs it recorded before, `prior`: drawn from epoch 1, and
        counted as done). If every run in view had ended, the view starts afresh."""
        if all(run.ended for run in self.runs.values()) and not self.continuing:
            self.runs.clear()
        self.continuing = False
        run_id = run_id if run_id is not None else max(self.runs, default=0) + 1
        color = RUN_COLORS[len(self.runs) % len(RUN_COLORS)]
        self.runs[run_id] = LiveRun(title, total, color)
        for rec in prior:
            self.runs[run_id].curves.add(rec)
        self.rate = StepRate(sum(r.total for r in self.runs.values() if not r.ended))
        bar = self.query_one("#live-progress", ProgressBar)
        bar.display = True
        bar.update(total=sum(r.total for r in self.runs.values()), progress=self.bar_progress())
        self.status = "starting…"
        self.text_dirty = self.plots_dirty = True
        self.update_text()

    def keep_ended(self) -> None:
        self.continuing = True

    def training(self) -> list[LiveRun]:
        return [r for r in self.runs.values() if not r.ended]

    def epochs_done(self) -> int:
        """Epoch records in so far of the runs still training: what the time left counts."""
        return sum(len(r.curves) for r in self.training())

    def bar_progress(self) -> int:
        """What the bar shows done: every run's records, and the whole of a run that ended (a cancelled run trains
        no more), so that the bar never goes back when one run of a group stops."""
        return sum(r.total if r.ended else min(len(r.curves), r.total) for r in self.runs.values())

    def add(self, records: list, run_id: int | None = None) -> None:
        """Take records of a run; drawing waits for the next tick."""
        if not self.runs:
            return
        run = self.runs[run_id] if run_id in self.runs else next(reversed(self.runs.values()))
        for rec in records:
            run.curves.add(rec)
        if records:
            run.status = "training"
            self.rate.update(self.epochs_done(), self.clock.time)
            last = records[-1]
            epochs, test = Curves.mean(run.curves.test_acc)
            self.status = (f"{self.time_left()} · {markup(run.title)}: epoch {epochs[-1]}, test {pct(test[-1])}% "
                           f"(mean of {len(run.curves.test_acc)} rounds) · lr {last.lr:.2e}")
        self.text_dirty = self.plots_dirty = True

    def time_left(self) -> str:
        return "time " + self.rate.left_text()

    def finish(self, status: str, line: str, run_id: int | None = None) -> None:
        if not self.runs:
            return
        run = self.runs[run_id] if run_id in self.runs else next(reversed(self.runs.values()))
        run.status = status
        self.status = f"{markup(run.title)}: {status}" + (f" · {line}" if line else "")
        bar = self.query_one("#live-progress", ProgressBar)
        if not self.training():  # all ended: a full bar, unless none is done: then how far they got
            if any(r.status == "done" for r in self.runs.values()):
                bar.update(total=1, progress=1)
            else:
                bar.update(total=sum(r.total for r in self.runs.values()),
                           progress=sum(len(r.curves) for r in self.runs.values()))
        else:
            bar.update(progress=self.bar_progress())
        self.text_dirty = self.plots_dirty = True
        self.update_text()
        self.redraw()

    def headline_text(self) -> str:
        if not self.runs:
            return self.headline
        parts = []
        for run in self.runs.values():
            r, g, b = run.color if len(self.runs) > 1 else MEAN_COLOR
            state = {"starting": "…", "training": "…", "done": " ✓", "cancelled": " (cancelled)",
                     "failed": " (failed)"}[run.status]
            parts.append(f"[rgb({r},{g},{b})]━━[/] [b]{markup(run.title)}[/b]{state}")
        if len(self.runs) == 1:  # one run: its accuracy plot's two lines, said where no plot size cuts them
            (tr, tg, tb), (sr, sg, sb) = TRAIN_COLOR, TEST_COLOR
            parts.append(f"· accuracy: [rgb({sr},{sg},{sb})]━━[/] test [rgb({tr},{tg},{tb})]━━[/] train")
        return "  ".join(parts)

    def update_text(self, force: bool = False) -> None:
        if self.text_dirty or force:
            self.text_dirty = False
            self.query_one("#live-title", Legend).text = self.headline_text()
            self.query_one("#live-status", StatusLine).text = self.status
            if self.training():
                self.query_one("#live-progress", ProgressBar).update(progress=self.bar_progress())

    def redraw(self, force: bool = False) -> None:
        if self.plots_dirty or force:
            self.plots_dirty = False
            loss, acc = self.query_one("#loss-plot", PlotextPlot), self.query_one("#acc-plot", PlotextPlot)
            if len(self.runs) <= 1:
                draw_runs(loss, acc, [(r.title, r.curves, MEAN_COLOR) for r in self.runs.values()], with_train=True,
                          view=self.view)
            else:
                draw_runs(loss, acc, [(r.title, r.curves, r.color) for r in self.runs.values()], view=self.view)

    def action_wall_time(self) -> None:
        self.view.wall = not self.view.wall
        self.redraw(force=True)
