"""What the app does with the runs in its results table: export them, compare them. A mixin of WorkbenchApp, so
its actions stay bindings of the app; kept light (the compare screen is imported when it opens)."""

from __future__ import annotations

from ..config import TABLE_II
from ..runs import RunSummary, export_csv, latest_row_runs
from .confirm import Confirm
from .results import ResultsTable
from .text import markup


class RunsActions:
    """Needs of its app: presets, export_path, query_one, notify, push_screen."""

    def action_export(self, replace: bool = False) -> None:
        """The results table (the rows the filter shows) to CSV; an export already there is replaced only when the
        user says so."""
        if self.export_path.exists() and not replace:
            self.push_screen(Confirm(f"{markup(self.export_path)} exists. Replace it?"),
                             lambda yes: self.action_export(replace=True) if yes else None)
            return
        summaries = self.query_one(ResultsTable).shown()
        try:
            path = export_csv(summaries, self.export_path)
        except (OSError, ValueError) as exc:
            self.notify(markup(f"cannot write {self.export_path}: {exc}"), title="Export", severity="error")
            return
        self.notify(markup(f"{len(summaries)} runs written to {path.resolve()}"), title="Exported")

    def action_compare(self) -> None:
        """The marked runs on the compare screen, in the order marked."""
        table = self.query_one(ResultsTable)
        runs = [table.summaries[i] for i in table.marked if i in table.summaries]
        if len(runs) < 2:
            self.notify("mark two or more runs in the results table with space first", title="Compare",
                        severity="warning")
            return
        self.open_compare(runs)

    def action_compare_table2(self) -> None:
        """The latest run of each Table II row whose config is still the row's."""
        presets = [self.presets[name] for name in TABLE_II if name in self.presets]
        runs = latest_row_runs(list(self.query_one(ResultsTable).summaries.values()), presets)
        if len(runs) < 2:
            self.notify("fewer than two Table II rows have a finished run: ctrl+t trains them", title="Compare",
                        severity="warning")
            return
        self.open_compare(runs)

    def open_compare(self, runs: list[RunSummary]) -> None:
        from .compare import CompareScreen

        self.push_screen(CompareScreen(runs, self.export_path.parent))
