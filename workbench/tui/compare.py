"""The compare screen: marked runs side by side. Curves overlaid (mean line and ± std band per run), every round's
final score as dots, the paired comparison of each pair of runs, and two runs' error heatmaps side by side or
their difference. `ctrl+e` writes the same comparison as a figure (analysis/figures.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from workbench.analysis.curves import Curves, strip_jitter
from workbench.analysis.figures import write_figure
from workbench.analysis.paired import all_pairs, round_scores
from workbench.analysis.predictions import PredictionsUnreadable, error_grid, error_rate, load_predictions
from workbench.format import (COMPARISON_COLUMNS, comparison_cells, machine_differences, percent, plain, setting,
                              short_names, weights_label)
from workbench.paper.architecture import weight_count
from workbench.paper.config import differing_fields, short_label
from workbench.records.store import RunSummary, readable_history
from workbench.tui.live import RUN_COLORS, CurveView, fit_title, plot_metric
from workbench.tui.pictures import grid_text
from workbench.tui.text import markup

NUMBER_COLUMNS_WIDTH = 49  # mean Δ, 95 % CI, p, Holm p, won: their widest values ("[+10.2, -12.3]") and padding


PAIRING_BESIDE = 100  # columns: narrower, a pair's pairing goes under its names instead of a column of its own


def pair_widths(width: int) -> tuple[int, int]:
    """The paired table's two text columns (the runs, the pairing and its reason; 0 where it goes under the
    runs), sharing what the number columns leave of `width`: both wrap at words, so neither is cut."""
    if width < PAIRING_BESIDE:
        return max(16, width - NUMBER_COLUMNS_WIDTH - 6), 0
    rest = width - NUMBER_COLUMNS_WIDTH - 8  # their own padding, the scrollbar, the screen's edges
    names = max(16, min(56, rest * 3 // 5))
    return names, rest - names


class CompareScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("ctrl+e", "export", "Export figure"),
                Binding("x", "toggle_difference", "Difference"),
                Binding("c", "tab('c-curves')", "Curves", show=False), Binding("p", "tab('c-paired')", "Paired", show=False),
                Binding("e", "tab('c-errors')", "Errors", show=False),
                Binding("m", "smooth", "Smooth"), Binding("g", "log_loss", "Log loss"),
                Binding("r", "per_round", "Per round"), Binding("w", "wall_time", "Wall time"),
                Binding("1", "choose_heatmap(0)", "Heatmap a: next run", show=False),
                Binding("2", "choose_heatmap(1)", "Heatmap b: next run", show=False)]

    def __init__(self, summaries: list[RunSummary], figure_dir: Path | None = None) -> None:
        super().__init__()
        self.summaries = summaries
        self.figure_dir = figure_dir or Path(".")
        self.run_colors = [RUN_COLORS[i % len(RUN_COLORS)] for i in range(len(summaries))]
        self.histories: list[list[dict]] = []  # read once, for the curves and the exported figure
        self.curves: list[Curves] = []
        self.comparisons: list = []
        self.difference = False
        self.heatmaps: list[tuple[RunSummary, np.ndarray]] = []  # every run with readable predictions
        self.view = CurveView()
        self.pair = [0, 1]  # the two of them the Errors tab shows (1 and 2 step through the others)
        self.loaded = threading.Event()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.legend(), id="compare-legend")
        yield Static(self.what_differs(), id="compare-differs")
        with TabbedContent(id="compare-tabs", initial="c-curves"):
            with TabPane("Curves (c)", id="c-curves"):
                with Vertical():
                    with Horizontal(classes="compare-row"):
                        yield PlotextPlot(id="c-test")
                        yield PlotextPlot(id="c-loss")
                    with Horizontal(classes="compare-row"):
                        yield PlotextPlot(id="c-digits")
                        yield PlotextPlot(id="c-strip")
            with TabPane("Paired (p)", id="c-paired"):
                yield Static("", id="c-pairs-count")
                yield DataTable(id="c-pairs", cursor_type="row", zebra_stripes=True)
                yield Static("round r of two runs with the same seed, digits and number of pairs trains and tests on "
                             "the same pairs: their differences are paired (mean in points, 95 % t interval, paired "
                             "t-test, rounds won); otherwise Welch's unpaired test, and the reason. With several "
                             "pairs, Holm p is p adjusted for testing them all", id="c-pairs-note")
            with TabPane("Errors (e)", id="c-errors"):
                yield Static("", id="c-errors-note")
                with ScrollableContainer(id="c-heatmaps"):  # side by side; one above the other when narrow
                    yield Static("", id="c-heat-a", classes="picture")
                    yield Static("", id="c-heat-b", classes="picture")
        yield Footer(show_command_palette=False)  # the palette is a key in the list: its own item sat over them

    def legend(self) -> str:
        return "  ".join(f"[rgb({r},{g},{b})]━━[/] [b]{markup(s.name)}[/b] ({markup(s.id[-6:])})"
                         for s, (r, g, b) in zip(self.summaries, self.run_colors))

    def what_differs(self) -> str:
        """The settings that differ across the runs, each with its values in the legend's order, and the weights
        each network trains."""
        configs = [s.config for s in self.summaries]
        parts = [f"{short_label(k)} {' / '.join(setting(getattr(c, k)) for c in configs)}"
                 for k in differing_fields(configs)]
        weights = [weights_label(weight_count(c)) for c in configs]
        parts.append(f"weights {weights[0]} (all)" if len(set(weights)) == 1 else f"weights {' / '.join(weights)}")
        if len(parts) == 1:
            parts.insert(0, "no setting")
        parts += machine_differences(self.summaries)  # a difference of machine is a difference of numbers
        return "[b]what differs:[/b] " + markup(" · ".join(parts))

    def on_mount(self) -> None:
        self.sub_title = f"comparing {len(self.summaries)} runs · reading their records…"
        table = self.query_one("#c-pairs", DataTable)
        names, *numbers, pairing = COMPARISON_COLUMNS
        names_width, self.pairing_width = pair_widths(self.app.size.width)
        table.add_column(names, width=names_width)
        table.add_columns(*numbers)
        if self.pairing_width:
            table.add_column(pairing, width=self.pairing_width)
        self.call_after_refresh(self.load)  # the screen first, then its records: opening waits for neither

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self) -> None:
        """Reads the histories and predictions and computes the comparisons off the UI thread, so that the
        screen opens at once and the live view keeps drawing; then shows them."""
        histories = [readable_history(s) for s in self.summaries]
        curves = [Curves.of(history) for history in histories]
        comparisons = all_pairs(self.summaries)
        heatmaps, problems = [], []
        for s in self.summaries:
            try:
                p = load_predictions(s.path)
            except PredictionsUnreadable as exc:
                problems.append(str(exc))
                p = None
            if p is not None:
                heatmaps.append((s, percent(error_rate(*error_grid(p)))))
        self.app.call_from_thread(self.show_loaded, histories, curves, comparisons, heatmaps, problems)

    def show_loaded(self, histories, curves, comparisons, heatmaps, problems) -> None:
        self.histories, self.curves, self.comparisons, self.heatmaps = histories, curves, comparisons, heatmaps
        for problem in problems:
            self.notify(markup(problem), severity="warning")
        self.sub_title = f"comparing {len(self.summaries)} runs"
        self.draw_curves()
        table = self.query_one("#c-pairs", DataTable)
        for c in self.comparisons:  # Text, not str: a str cell is parsed as markup (a fifth of the opening time)
            runs, *numbers, pairing = (Text(plain(cell)) for cell in comparison_cells(c))
            if not self.pairing_width:  # narrow: the pairing under the runs, when it says more than "paired"
                runs = runs if c.paired else Text.assemble(runs, "\n", Text(plain(pairing), style="dim"))
                table.add_row(runs, *numbers, height=None)
            else:
                table.add_row(runs, *numbers, pairing, height=None)
        n = len(self.comparisons)
        self.query_one("#c-pairs-count", Static).update(
            f"{n} pair{'s' if n != 1 else ''} of runs" + (" · ↑ ↓ PgUp PgDn ctrl+Home ctrl+End reach every one" if n > 5 else ""))
        self.draw_heatmaps()
        self.loaded.set()

    def draw_curves(self) -> None:
        runs = list(zip(self.summaries, self.curves, self.run_colors))
        # each run's time axis at its train time, summed only when drawn
        axes = [curves.time_axis(s.wall_time or None) for s, curves, _ in runs] if self.view.wall else None
        for plot_id, attr, title, scale in (("#c-test", "test_acc", "test accuracy %", 100.0),
                                            ("#c-loss", "loss", "train loss", 1.0),
                                            ("#c-digits", "digit_acc", "digit accuracy % (auxiliary loss on)", 100.0)):
            plot_metric(self.query_one(plot_id, PlotextPlot), title,
                        [(plain(s.name), getattr(curves, attr), color) for s, curves, color in runs], scale,
                        self.view, log_here=attr == "loss", axes=axes)
        plot = self.query_one("#c-strip", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        strips = [list(round_scores(s).values()) for s in self.summaries]
        for i, (scores, jitter, color) in enumerate(zip(strips, strip_jitter(strips, 0.2), self.run_colors)):
            if scores:
                plt.scatter(list(i + 1 + jitter), scores, color=color, marker="dot")
                plt.plot([i + 0.7, i + 1.3], [float(np.mean(scores))] * 2, color=color, marker="braille")
        per_run = max(plot.size.width - 8, 20) // len(self.summaries) - 2  # the y axis's labels, then one slot each
        plt.xticks(list(range(1, len(self.summaries) + 1)),
                   short_names([plain(s.name) for s in self.summaries], per_run))
        plt.xlim(0.5, len(self.summaries) + 0.5)
        fit_title(plot, "final test accuracy % of every round (dots) and their mean (—)")
        plot.refresh()

    def draw_heatmaps(self) -> None:
        note = self.query_one("#c-errors-note", Static)
        if not self.loaded.is_set() and not self.curves:
            note.update("reading the runs' predictions…")
            return
        a, b = self.query_one("#c-heat-a", Static), self.query_one("#c-heat-b", Static)
        if not self.heatmaps:
            note.update("none of these runs recorded test predictions")
            return
        shown = self.shown_heatmaps()
        more = " · 1 / 2: another run on the left / right" if len(self.heatmaps) > 2 else ""
        skipped = len(self.summaries) - len(self.heatmaps)
        more += f" · {skipped} run{'s' if skipped > 1 else ''} without predictions" if skipped else ""
        if len(shown) == 1 or not self.difference:
            top = max(float(np.nanmax(rate)) for _, rate in shown)  # one scale for both
            for widget, (s, rate) in zip((a, b), shown):
                widget.update(grid_text(rate, f"{plain(s.name)}: error % by digit pair", top=top))
            if len(shown) == 1:
                b.update("")
            note.update("error % by (first digit, second digit) over all rounds' test pairs, one colour scale"
                        + (" · x: their difference" if len(shown) == 2 else "") + more)
            return
        (sa, ra), (sb, rb) = shown
        a.update(grid_text(ra - rb, f"{plain(sa.name)} − {plain(sb.name)}: error % points", signed=True, fmt="{:+3.0f}"))
        b.update("")
        note.update(f"red: {markup(sa.name)} errs more on that digit pair; blue: less · x: side by side" + more)

    def shown_heatmaps(self) -> list[tuple[RunSummary, np.ndarray]]:
        return [self.heatmaps[i] for i in self.pair[:len(self.heatmaps)]]

    def action_choose_heatmap(self, side: int) -> None:
        """The next run (with predictions) on one side of the Errors tab, never the one on the other side."""
        if len(self.heatmaps) > 2:
            other = self.pair[1 - side]
            step = (self.pair[side] + 1) % len(self.heatmaps)
            self.pair[side] = step if step != other else (step + 1) % len(self.heatmaps)
            self.draw_heatmaps()
        self.query_one("#compare-tabs", TabbedContent).active = "c-errors"

    SMOOTHING = (0.0, 0.6, 0.9)  # m steps through them

    def action_smooth(self) -> None:
        steps = self.SMOOTHING
        self.view.smooth = steps[(steps.index(self.view.smooth) + 1) % len(steps)]
        self.redraw_curves()

    def action_log_loss(self) -> None:
        self.view.log = not self.view.log
        self.redraw_curves()

    def action_per_round(self) -> None:
        self.view.per_round = not self.view.per_round
        self.redraw_curves()

    def action_wall_time(self) -> None:
        self.view.wall = not self.view.wall
        self.redraw_curves()

    def redraw_curves(self) -> None:
        self.query_one("#compare-tabs", TabbedContent).active = "c-curves"
        if self.loaded.is_set():
            self.draw_curves()

    def action_toggle_difference(self) -> None:
        self.difference = not self.difference
        self.draw_heatmaps()
        self.query_one("#compare-tabs", TabbedContent).active = "c-errors"

    def action_tab(self, tab: str) -> None:
        self.query_one("#compare-tabs", TabbedContent).active = tab
        if tab == "c-paired":
            self.query_one("#c-pairs", DataTable).focus()  # its keys page through every pair

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "c-paired":
            self.query_one("#c-pairs", DataTable).focus()

    def action_export(self) -> None:
        out = self.figure_dir / f"comparison-{time.strftime('%Y%m%d-%H%M%S')}.png"
        histories = self.histories if self.loaded.is_set() else [readable_history(s) for s in self.summaries]
        try:
            problems = write_figure(self.summaries, histories, out, difference=self.difference,
                                    heat_first=[s.id for s, _ in self.shown_heatmaps()])
        except (OSError, ValueError) as exc:
            self.notify(markup(f"cannot write {out}: {exc}"), title="Export figure", severity="error")
            return
        self.notify(markup(f"figure written to {out.resolve()}"), title="Export figure")
        for problem in problems:
            self.notify(markup(problem), title="Export figure", severity="warning")
