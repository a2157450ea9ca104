"""Which settings matter, drawn in the terminal: importance as bars and parallel coordinates as lines coloured by
score (analysis/importance.py). The across-runs view and the sweep screen draw both with these."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from workbench.analysis.importance import Importance, Parallel, label
from workbench.tui.live import fit_title

LOW_SCORE, HIGH_SCORE = (220, 60, 60), (40, 180, 90)  # a line's colour runs from red (worst) to green (best)


def score_colour(score: float, low: float, high: float) -> tuple[int, int, int]:
    t = (score - low) / (high - low) if high > low else 1.0
    return tuple(round(a + (b - a) * t) for a, b in zip(LOW_SCORE, HIGH_SCORE))


def score_key(lines: Parallel, unit: str = "%") -> str:
    """The colour key a caption gives: what red and green stand for."""
    (lr, lg, lb), (hr, hg, hb) = LOW_SCORE, HIGH_SCORE
    return (f"colour: score, [rgb({lr},{lg},{lb})]━━[/] {lines.low:.1f} {unit} to "
            f"[rgb({hr},{hg},{hb})]━━[/] {lines.high:.1f} {unit}")


def clear(plot: PlotextPlot):
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    return plt


def draw_importance(plot: PlotextPlot, result: Importance | None, title: str) -> None:
    """Horizontal bars, the most important setting on top; while it is worked out (None), an empty frame."""
    plt = clear(plot)
    if result is not None and result.settings:
        shown = list(reversed(result.settings))
        plt.bar([f"{label(k)} {v:.2f}" for k, v in shown], [v for _, v in shown], orientation="horizontal", width=0.4,
                color=(30, 150, 220))
        plt.xlim(0, 1)
        plt.xlabel("share of the score's variance (fANOVA)")
    fit_title(plot, title)
    plot.refresh()


def draw_parallel(plot: PlotextPlot, lines: Parallel, title: str) -> None:
    """An axis per setting and one for the score, each run a line through its values, coloured by its score; each
    axis's values written at its ends."""
    plt = clear(plot)
    xs = list(range(len(lines.axes)))
    for x in xs:
        plt.vline(x, color=(120, 120, 120))
    for _, places, score in lines.lines:
        plt.plot(xs, places, color=score_colour(score, lines.low, lines.high), marker="braille")
    for x, axis in enumerate(lines.axes):
        for y, text in axis.ticks:
            plt.text(text, x, y, alignment="left")
    plt.xticks(xs, [axis.label + (" (log)" if axis.log else "") for axis in lines.axes])
    plt.yticks([])
    plt.ylim(-0.05, 1.05)
    plt.xlim(-0.2, max(len(xs) - 0.6, 0.6))
    fit_title(plot, title)
    plot.refresh()
