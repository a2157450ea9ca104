"""Across runs: every run the results table shows (its filter too) as a point, final test accuracy against one
setting or the weight count, with its std over rounds, coloured by subnet / weight sharing / auxiliary loss.
`[` and `]` step through the settings, `o` changes the colouring, `ctrl+e` writes the figure (`plot --scatter`).
`i` shows which settings matter (importance, `plot --importance`), `p` every run as a line through its settings
to its score (parallel coordinates, `plot --parallel`), `s` the scatter again."""

from __future__ import annotations

import math
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual_plotext import PlotextPlot

from workbench.analysis.across_runs import COLOUR_BY, SCATTER_FIELDS, Scatter, scatter, varying
from workbench.analysis.figures import write_importance, write_parallel, write_scatter
from workbench.analysis.importance import Importance, importances, parallel, rows_of_runs
from workbench.records.store import RunSummary
from workbench.tui.live import RUN_COLORS, fit_title
from workbench.tui.settings_views import draw_importance, draw_parallel, score_key
from workbench.tui.text import markup

MARKERS = ("●", "▲", "■", "◆", "x", "+", "o", "*")  # one character each: plotext draws it as given


class ScatterScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"),
                Binding("right_square_bracket", "step(1)", "Next setting"),
                Binding("left_square_bracket", "step(-1)", "Previous setting"),
                Binding("o", "colour", "Colour by"), Binding("s", "view('scatter')", "Scatter"),
                Binding("i", "view('importance')", "Importance"), Binding("p", "view('parallel')", "Parallel"),
                Binding("ctrl+e", "export", "Export figure")]

    def __init__(self, summaries: list[RunSummary], filter_text: str = "", figure_dir: Path | None = None,
                 field: str = "alpha") -> None:
        super().__init__()
        self.summaries = summaries
        self.filter_text = filter_text
        self.figure_dir = figure_dir or Path(".")
        # [ and ] step through the settings that differ among these runs: one the same for all is one dot column
        self.fields = varying(summaries) or list(SCATTER_FIELDS)
        self.field = field if field in self.fields else self.fields[0]
        self.colour_by = "net"
        self.points: Scatter = scatter(summaries, self.field)
        self.view = "scatter"
        self.rows = rows_of_runs(summaries)
        self.importance: Importance | None = None  # worked out in a thread the first time it is asked for

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="scatter-caption")
        yield PlotextPlot(id="scatter-plot")
        yield Static(id="scatter-legend")
        yield Footer(show_command_palette=False)  # the palette is a key in the list: its own item sat over them

    def on_mount(self) -> None:
        self.title = "Across runs"
        self.draw()

    def action_step(self, by: int) -> None:
        self.field = self.fields[(self.fields.index(self.field) + by) % len(self.fields)]
        self.view = "scatter"
        self.draw()

    def action_colour(self) -> None:
        keys = list(COLOUR_BY)
        self.colour_by = keys[(keys.index(self.colour_by) + 1) % len(keys)]
        self.view = "scatter"
        self.draw()

    def action_view(self, view: str) -> None:
        self.view = view
        if view == "importance" and self.importance is None:
            self.weigh()
        self.draw()

    @work(thread=True, exclusive=True, group="importance")
    def weigh(self) -> None:
        result = importances(self.rows)  # fANOVA fits a forest: a second or so, never on the screen's thread
        self.app.call_from_thread(self.weighed, result)

    def weighed(self, result: Importance) -> None:
        self.importance = result
        if self.view == "importance":
            self.draw()

    def draw(self) -> None:
        if self.view == "scatter":
            self.draw_scatter()
            return
        plot, rows = self.query_one("#scatter-plot", PlotextPlot), self.rows
        where = f" · filter {self.filter_text!r}" if self.filter_text else ""
        left_out = rows.left_out()
        enough = rows.weighable
        caption = (f"{len(rows.rows)} of {len(self.summaries)} runs" + (f" (left out: {left_out})" if left_out else "")
                   + where + " · s scatter · i importance · p parallel")
        legend = ""
        if not enough:
            legend = "nothing to weigh: " + ("fewer than two done runs" if len(rows.rows) < 2
                                             else "no setting differs among these runs")
            draw_importance(plot, None, "which settings matter")
        elif self.view == "importance":
            result = self.importance
            legend = ("weighing the settings (fANOVA)…" if result is None else result.why_none
                      or "each setting's share of the variance of the final test accuracy (fANOVA, Optuna)")
            draw_importance(plot, result, f"which settings matter · {len(rows.rows)} runs")
        else:
            lines = parallel(rows)
            legend = score_key(lines)
            draw_parallel(plot, lines, "every run through its settings to its test accuracy")
        self.query_one("#scatter-caption", Static).update(markup(caption))
        self.query_one("#scatter-legend", Static).update(legend if self.view == "parallel" and enough
                                                         else markup(legend))

    def draw_scatter(self) -> None:
        self.points = points = scatter(self.summaries, self.field, self.colour_by)
        where = f" · filter {self.filter_text!r}" if self.filter_text else ""
        left_out = points.left_out()
        self.query_one("#scatter-caption", Static).update(markup(
            f"test accuracy % against {points.label} · {len(points.points)} of {len(self.summaries)} runs"
            + (f" ({left_out} left out)" if left_out else "") + where
            + f" · colour: {COLOUR_BY[self.colour_by]} (o) · [ ] setting "
            f"({self.fields.index(self.field) + 1} of {len(self.fields)} that differ)"))
        plot = self.query_one("#scatter-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        legend = []

        def at(x: float) -> float:
            return math.log10(x) if points.log_x else x

        for i, (group, members) in enumerate(points.groups.items()):
            color = RUN_COLORS[i % len(RUN_COLORS)]
            marker = MARKERS[i % len(MARKERS)]
            for p in members:  # the ± std over rounds as a bar through the point
                plt.plot([at(p.x), at(p.x)], [p.mean - p.std, p.mean + p.std], color=color, marker="braille")
            plt.scatter([at(p.x) for p in members], [p.mean for p in members], color=color, marker=marker)
            legend.append(f"[rgb{color}]{marker}[/] {markup(group)} ({len(members)})")
        if points.ticks:
            plt.xticks([x for x, _ in points.ticks], [name for _, name in points.ticks])
            plt.xlim(-0.5, len(points.ticks) - 0.5)
        elif points.points:
            low, high = at(min(p.x for p in points.points)), at(max(p.x for p in points.points))
            margin = (high - low) * 0.05 or 0.5  # a point on the frame would hide its bar
            plt.xlim(low - margin, high + margin)
            if points.log_x:
                decades = range(math.floor(low), math.ceil(high) + 1)
                plt.xticks(list(decades), [f"{10 ** e:g}" for e in decades])
        plt.xlabel(points.label + (" (log scale)" if points.log_x else ""))
        fit_title(plot, f"final test accuracy % against {points.label} (mean ± std over rounds)")
        plot.refresh()
        self.query_one("#scatter-legend", Static).update(
            " · ".join(legend) if legend else markup(f"no done run here has {points.label}: [ ] another setting"))

    def action_export(self) -> None:
        if self.view != "scatter":
            self.export_settings()
            return
        if not self.points.points:
            self.notify(markup(f"nothing to draw: no done run has {self.points.label}"), title="Export figure",
                        severity="warning")
            return
        out = self.figure_dir / f"scatter-{self.field}.png"
        try:
            write_scatter(self.points, out)
        except OSError as exc:
            self.notify(markup(f"cannot write {out}: {exc.strerror or exc}"), title="Export figure", severity="error")
            return
        self.notify(markup(f"wrote {out.resolve()}"), title="Export figure")

    def export_settings(self) -> None:
        """ctrl+e in the importance or parallel view: its figure, as `plot --importance` / `--parallel` draws it."""
        rows, out = self.rows, self.figure_dir / f"{self.view}.png"
        if not rows.weighable or (self.view == "importance" and (self.importance is None or self.importance.why_none)):
            self.notify("nothing to draw yet", title="Export figure", severity="warning")
            return
        try:
            if self.view == "importance":
                write_importance(self.importance, rows, self.filter_text, out)
            else:
                write_parallel(rows, self.filter_text, out)
        except OSError as exc:
            self.notify(markup(f"cannot write {out}: {exc.strerror or exc}"), title="Export figure", severity="error")
            return
        self.notify(markup(f"wrote {out.resolve()}"), title="Export figure")
