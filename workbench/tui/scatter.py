"""Across runs: every run the results table shows (its filter too) as a point, final test accuracy against one
setting or the weight count, with its std over rounds, coloured by subnet / weight sharing / auxiliary loss.
`[` and `]` step through the settings, `o` changes the colouring, `ctrl+e` writes the figure (`plot --scatter`)."""

from __future__ import annotations

import math
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual_plotext import PlotextPlot

from workbench.analysis.across_runs import COLOUR_BY, SCATTER_FIELDS, Scatter, scatter, varying
from workbench.analysis.figures import write_scatter
from workbench.records.store import RunSummary
from workbench.tui.live import RUN_COLORS, fit_title
from workbench.tui.text import markup

MARKERS = ("●", "▲", "■", "◆", "x", "+", "o", "*")  # one character each: plotext draws it as given


class ScatterScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"),
                Binding("right_square_bracket", "step(1)", "Next setting"),
                Binding("left_square_bracket", "step(-1)", "Previous setting"),
                Binding("o", "colour", "Colour by"), Binding("ctrl+e", "export", "Export figure")]

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
        self.draw()

    def action_colour(self) -> None:
        keys = list(COLOUR_BY)
        self.colour_by = keys[(keys.index(self.colour_by) + 1) % len(keys)]
        self.draw()

    def draw(self) -> None:
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

