"""Figures for a report, with matplotlib: the runs' curves with ± std bands, every round's final score as dots,
and each run's error heatmap by digit pair. `digit-workbench plot` and the compare screen write the same figure."""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path

import numpy as np

from workbench.analysis.curves import Curves, strip_jitter
from workbench.analysis.importance import label as setting_label, parallel
from workbench.analysis.networks import first_layer
from workbench.analysis.paired import all_pairs, round_scores
from workbench.analysis.predictions import PredictionsUnreadable, error_grid, error_rate, load_predictions
from workbench.format import (COMPARISON_COLUMNS, comparison_cells, machine_differences, percent, plain,
                              provenance_text)
from workbench.fsutil import atomic_write_bytes
from workbench.records.store import readable_history

FORMATS = ("png", "svg", "pdf")
MAX_HEATMAPS = 4
MAX_PROVENANCE = 6  # runs whose origin the footnote names one by one


def quietly(draw):
    """matplotlib's warnings (a glyph the font lacks in a run's name, a legend with nothing to label) are not the
    user's to read: the figure is drawn all the same, and nothing else reaches the terminal or the app."""
    @functools.wraps(draw)
    def drawn(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return draw(*args, **kwargs)

    return drawn


def figure_text(value) -> str:
    """A name as matplotlib must draw it: plain text. '$' would start mathtext (a lone '$x^$' raises), and a legend
    label that starts with '_' would be dropped from the legend."""
    text = plain(value).replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def run_label(summary) -> str:
    """A run as the figure names it; one that did not finish says so, for its curve stops and its strip is empty."""
    status = "" if summary.status == "done" else f" ({summary.status})"
    return figure_text(summary.name + status)


@quietly
def comparison_figure(summaries: list, histories: list[list[dict]], problems: list[str] | None = None,
                      difference: bool = False, heat_first: list[str] | None = None):
    """A matplotlib Figure comparing the runs (at least one); a predictions file that cannot be read is left out
    of the heatmaps and named in `problems`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    preds = []
    for s in summaries:
        try:
            preds.append(load_predictions(s.path))
        except PredictionsUnreadable as exc:
            preds.append(None)
            if problems is not None:
                problems.append(f"{exc}: no heatmap for {plain(s.name)}")
    heat = [(s, p) for s, p in zip(summaries, preds) if p is not None]
    if heat_first:  # the runs whose heatmaps the screen shows come first (the difference view takes two)
        heat.sort(key=lambda sp: heat_first.index(sp[0].id) if sp[0].id in heat_first else len(heat_first))
    heat = heat[:MAX_HEATMAPS]
    columns = max(3, len(heat))
    fig = Figure(figsize=(4.2 * columns, 7.6 if heat else 3.8), layout="constrained")
    grid = fig.add_gridspec(2 if heat else 1, columns)
    colors = [f"C{i}" for i in range(len(summaries))]

    curves = [Curves.of(history) for history in histories]
    labels = [run_label(s) for s in summaries]
    mixed = len({s.config.aux_loss for s in summaries}) > 1
    loss_title = "train loss (equation 1: with the digit terms where aux is on)" if mixed else "train loss"
    for column, (attr, title, scale) in enumerate((("test_acc", "test accuracy %", 100.0), ("loss", loss_title, 1.0))):
        ax = fig.add_subplot(grid[0, column])
        for label, run_curves, color in zip(labels, curves, colors):
            epochs, mean, std = (np.array(x) for x in Curves.mean_std(getattr(run_curves, attr)))
            if len(epochs):
                ax.plot(epochs, mean * scale, color=color, label=label)
                ax.fill_between(epochs, (mean - std) * scale, (mean + std) * scale, color=color, alpha=0.2)
        ax.set_title(f"{title}: mean ± std over rounds", fontsize=9 if mixed and attr == "loss" else None)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)

    ax = fig.add_subplot(grid[0, 2])  # the strip plot: every round's final score
    strips = [list(round_scores(s).values()) for s in summaries]
    for i, (scores, jitter, color) in enumerate(zip(strips, strip_jitter(strips, 0.12), colors)):
        ax.scatter(i + jitter, scores, color=color, s=14)
        if scores:
            ax.hlines(np.mean(scores), i - 0.3, i + 0.3, color=color)
    ax.set_xticks(range(len(summaries)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("test accuracy %")
    ax.set_title("final test accuracy % of each round")

    if heat:
        used = draw_heatmaps(fig, grid, heat, difference and len(heat) == 2)
        if used < columns and len(summaries) > 1:  # a panel left: the paired comparison belongs there
            draw_paired(fig.add_subplot(grid[1, used:]), summaries)
    fig.supxlabel("\n".join(figure_text(line) for line in where_from(summaries)), fontsize=7, color="0.3",
                  ha="left", x=0.01)
    return fig


def where_from(summaries: list) -> list[str]:
    """The figure's footnote: where each run's numbers came from (another CPU kind or device rounds differently,
    so a figure of runs from two machines says so first)."""
    differ = machine_differences(summaries)
    lines = [f"computed on different machines: {'; '.join(differ)}"] if differ else []
    for s in summaries[:MAX_PROVENANCE]:
        lines.append(f"{s.name}: {' · '.join(p for p in (s.device, provenance_text(s)) if p)}")
    if len(summaries) > MAX_PROVENANCE:
        lines.append(f"and {len(summaries) - MAX_PROVENANCE} more runs")
    return lines


def draw_heatmaps(fig, grid, heat: list, difference: bool) -> int:
    """The runs' error heatmaps on one scale, or (difference) the first minus the second; returns the panels used."""
    rates = [percent(error_rate(*error_grid(p))) for _, p in heat]
    if difference:
        (a, _), (b, _) = heat
        rates, titles = [rates[0] - rates[1]], [f"{a.name} − {b.name}: error % points"]
        finite = [r for r in rates if np.isfinite(r).any()]
        top = max([1.0] + [float(np.nanmax(np.abs(r))) for r in finite])
        scale = {"cmap": "RdBu_r", "vmin": -top, "vmax": top}
    else:
        titles = [f"{s.name}: error % by digit pair" for s, _ in heat]
        top = max([1.0] + [float(np.nanmax(r)) for r in rates if np.isfinite(r).any()])  # one scale: comparable
        scale = {"cmap": "magma_r", "vmin": 0, "vmax": top}
    for column, (rate, title) in enumerate(zip(rates, titles)):
        ax = fig.add_subplot(grid[1, column])
        image = ax.imshow(rate, **scale)
        ax.set_title(figure_text(title), fontsize=9)
        ax.set_xlabel("second digit")
        ax.set_ylabel("first digit")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        fig.colorbar(image, ax=ax, shrink=0.8)
    return len(rates)


def draw_paired(ax, summaries: list) -> None:
    """The paired comparison of every pair of runs as a small table of text (format.py's cells)."""
    rows = [comparison_cells(c) for c in all_pairs(summaries)[:8]]
    widths = [max(len(text) for text in column) for column in zip(COMPARISON_COLUMNS[1:], *(r[1:] for r in rows))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(COMPARISON_COLUMNS[1:], widths))]
    for name, *cells in rows:
        lines += [figure_text(name), "  ".join(c.ljust(w) for c, w in zip(cells, widths))]
    ax.axis("off")
    ax.set_title("paired comparison (points, 95 % CI, p, rounds won)", fontsize=9)
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=7, transform=ax.transAxes)


def figure_format(out: Path) -> str:
    """A figure's format by its file's suffix; ValueError naming the file when it is none of FORMATS."""
    fmt = Path(out).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"a figure is .png, .svg or .pdf, got {Path(out).name!r}")
    return fmt


@quietly
def save_figure(fig, out: Path, fmt: str) -> None:
    """A drawn figure written to out whole, or not at all."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120)
    atomic_write_bytes(Path(out), buffer.getvalue())


def write_figure(summaries: list, histories: list[list[dict]], out: Path, difference: bool = False,
                 heat_first: list[str] | None = None) -> list[str]:
    """Writes the comparison to out (png, svg or pdf by its suffix), whole or not at all; returns what could not
    be drawn, one line each."""
    fmt = figure_format(out)  # before drawing: a wrong name costs nothing
    problems: list[str] = []
    save_figure(comparison_figure(summaries, histories, problems, difference, heat_first), out, fmt)
    return problems


@quietly
def report_png(summary) -> tuple[bytes, int, int] | None:
    """The run's report figure (as `plot` draws it) as PNG bytes with its size; None when it cannot be drawn."""
    try:
        fig = comparison_figure([summary], [readable_history(summary)])
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        width, height = (int(v) for v in fig.get_size_inches() * 80)
        return buffer.getvalue(), height, width
    except Exception:  # a record whose files cannot be drawn keeps its curves; the figure is a courtesy
        return None


MARKERS = "os^Dv<>P*X"


@quietly
def scatter_figure(points):
    """Final score against one setting (across_runs.Scatter): a point per run with its std over rounds, a colour
    and a marker per group."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    for i, (group, members) in enumerate(points.groups.items()):
        ax.errorbar([p.x for p in members], [p.mean for p in members], yerr=[p.std for p in members],
                    fmt=MARKERS[i % len(MARKERS)], color=f"C{i}", capsize=3, label=figure_text(group))
    if points.log_x:
        ax.set_xscale("log")
    if points.ticks:
        ax.set_xticks([x for x, _ in points.ticks], [figure_text(name) for _, name in points.ticks])
        ax.set_xlim(-0.5, len(points.ticks) - 0.5)
    ax.set_xlabel(figure_text(points.label))
    ax.set_ylabel("test accuracy, % (mean ± std over rounds)")
    left_out = points.left_out()
    ax.set_title(figure_text(f"test accuracy against {points.label} · {len(points.points)} runs"
                             + (f" ({left_out} left out)" if left_out else "")), fontsize=10)
    ax.grid(alpha=0.3)
    if points.groups:
        ax.legend(fontsize=8)
    return fig


def write_scatter(points, out: Path) -> None:
    """Writes the scatter to out (png, svg or pdf by its suffix), whole or not at all."""
    fmt = figure_format(out)
    save_figure(scatter_figure(points), out, fmt)


@quietly
def importance_figure(importance, title: str):
    """Each setting's share of the score's variance (importance.Importance) as horizontal bars, largest on top."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    shown = list(reversed(importance.settings))
    fig = Figure(figsize=(7.0, 1.2 + 0.38 * max(len(shown), 1)), layout="constrained")
    ax = fig.add_subplot()
    ax.barh([figure_text(setting_label(k)) for k, _ in shown], [v for _, v in shown], color="C0")
    for y, (_, v) in enumerate(shown):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max([v for _, v in shown] + [0.1]) * 1.15)
    ax.set_xlabel("importance: share of the score's variance (fANOVA, Optuna)")
    ax.set_title(figure_text(title), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


@quietly
def parallel_figure(lines, title: str):
    """Parallel coordinates (importance.Parallel): an axis per setting and one for the score, every run a line
    through its values, coloured by its score."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 1.5 * len(lines.axes) + 1.5), 4.8), layout="constrained")
    ax = fig.add_subplot()
    scale = Normalize(lines.low, lines.high if lines.high > lines.low else lines.low + 1)
    colours = colormaps["viridis"]
    xs = list(range(len(lines.axes)))
    for _, places, score in lines.lines:
        ax.plot(xs, places, color=colours(scale(score)), alpha=0.75, linewidth=1.2)
    for x, axis in enumerate(lines.axes):
        ax.axvline(x, color="0.3", linewidth=0.8)
        for y, text in axis.ticks:
            ax.text(x + 0.04, y, figure_text(text), fontsize=8, va="center", color="0.15")
    ax.set_xticks(xs, [figure_text(a.label + (" (log)" if a.log else "")) for a in lines.axes])
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(xs) - 0.6)
    ax.set_ylim(-0.05, 1.05)
    fig.colorbar(ScalarMappable(scale, colours), ax=ax, label="score, %")
    ax.set_title(figure_text(title), fontsize=10)
    return fig


def settings_title(rows, words: str = "") -> str:
    """What the importance and parallel figures were drawn from: the runs, the filter, what was left out."""
    left_out = rows.left_out()
    return (f"{len(rows.rows)} runs" + (f" · filter {words!r}" if words else "")
            + (f" (left out: {left_out})" if left_out else ""))


def write_importance(importance, rows, words: str, out: Path) -> None:
    """`plot --importance` and the across-runs view's figure, whole or not at all."""
    title = f"which settings matter · {settings_title(rows, words)}"
    save_figure(importance_figure(importance, title), out, figure_format(out))


def write_parallel(rows, words: str, out: Path) -> None:
    """`plot --parallel` and the across-runs view's figure, whole or not at all."""
    title = f"every run through its settings to its score · {settings_title(rows, words)}"
    save_figure(parallel_figure(parallel(rows), title), out, figure_format(out))


@quietly
def weights_figure(summary, round_index: int = 0, shown: int = 32, change: bool = False):
    """What a round's first layer looks at (networks.first_layer): its units or filters as images on one
    diverging scale per side, red positive, blue negative."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure


    sides = first_layer(summary, round_index, change)
    columns = 8
    rows_per_side = [max(1, -(-min(shown, len(p)) // columns)) for _, p in sides]
    fig = Figure(figsize=(1.3 * columns * (2 if summary.config.subnet == "basic" else 1), 1.4 * sum(rows_per_side) + 0.8),
                 layout="constrained")
    what = "what training changed in the first layer" if change else "the first layer"
    fig.suptitle(figure_text(f"{summary.name}: {what} of round {round_index}"), fontsize=10)
    grid = fig.add_gridspec(sum(rows_per_side), columns)
    row = 0
    for (label, pictures), rows in zip(sides, rows_per_side):
        pictures = pictures[:shown]
        top = float(np.abs(pictures).max()) or 1.0
        for i, picture in enumerate(pictures):
            ax = fig.add_subplot(grid[row + i // columns, i % columns])
            ax.imshow(picture, cmap="RdBu_r", vmin=-top, vmax=top)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(figure_text(f"{label} {i}" if i == 0 else str(i)), fontsize=7, loc="left")
        row += rows
    return fig


def write_weights_figure(summary, out: Path, round_index: int = 0, change: bool = False) -> None:
    """Writes what a round's first layer learned to out (png, svg or pdf by its suffix), whole or not at all."""
    fmt = figure_format(out)
    save_figure(weights_figure(summary, round_index, change=change), out, fmt)
