"""What the app does with the runs in its results table: export them, compare them. A mixin of WorkbenchApp, so
its actions stay bindings of the app; kept light (the compare screen is imported when it opens)."""

from __future__ import annotations

from ..presets import TABLE_II
from ..notebook import latest_row_runs, move_to_trash, restore, trash_dir
from ..runs import RunSummary, export_csv
from .confirm import Confirm
from .details import RunDetails
from .form import ConfigForm
from .results import ResultsTable
from .text import markup


class RunsActions:
    """Needs of its app: presets, export_path, runs_root, query_one, notify, push_screen, action_playground."""

    trashed_last: list[RunSummary] = []  # the runs the last move to the trash took: `u` brings them back

    def on_data_table_row_selected(self, event) -> None:
        """Enter on a run: its details, from which it loads into the form or opens in the playground."""
        if not isinstance(event.data_table, ResultsTable):
            return
        summary = event.data_table.summaries.get(event.row_key.value)
        if summary is None:
            return

        def load(answer: str | None) -> None:
            if answer == "load":
                preset = self.presets.get(summary.preset or "")
                self.query_one(ConfigForm).set_config(summary.config, preset)
                self.notify(f"form loaded from {markup(summary.name)}")
            elif answer == "playground":
                self.action_playground([summary])
            elif answer == "resume":
                self.resume_run(summary)

        self.push_screen(RunDetails(summary), load)

    def action_resume(self) -> None:
        table = self.query_one(ResultsTable)
        self.resume_run(table.summaries.get(table.current_id()))

    def resume_run(self, summary: RunSummary | None) -> None:
        """A cancelled run queued to continue from its kept state to its planned epochs, on its engine: it trains
        as if it had never stopped, and its record replaces the cancelled one (which goes to the trash)."""
        from ..resume import ResumeUnreadable, continuation_of

        if summary is None:
            self.notify("no run to resume: the results table is empty", title="Resume", severity="warning")
            return
        if summary.status != "cancelled":
            self.notify(markup(f"{summary.name} is {summary.status}: a cancelled run continues here; "
                               f"`digit-workbench resume {summary.id} --epochs N` extends a done one"), title="Resume")
            return
        queued = [*self.runs.running, *self.runs.waiting]
        if any(item.run.resume and item.run.resume.continues == summary.id for item in queued):
            self.notify(markup(f"{summary.name} is queued to continue already"), title="Resume")
            return
        try:
            run, engine, _ = continuation_of(summary.id, self.runs_root)
        except (LookupError, ResumeUnreadable) as exc:
            self.notify(markup(str(exc)), title="Cannot resume", severity="error", timeout=10)
            return
        if engine != self.engine:
            self.notify(markup(f"{summary.name} trained on the {engine} engine and this app trains on {self.engine}: "
                               f"`digit-workbench resume {summary.id}` continues it"), title="Cannot resume",
                        severity="error", timeout=10)
            return
        reached = min((s.epoch for s in run.resume.states.values()), default=0)
        self.enqueue(run)
        self.notify(markup(f"queued {run.name}: continues from epoch {reached} of {run.config.epochs}"),
                    title="Resume")

    def action_trash_runs(self) -> None:
        """The marked runs, else the one under the cursor, into the runs folder's trash (whole, one rename each)."""
        table = self.query_one(ResultsTable)
        ids = list(table.marked) or [i for i in [table.current_id()] if i is not None]
        if not ids:
            self.notify("no run to move: the results table is empty", title="Trash", severity="warning")
            return
        kept = {i: table.summaries[i] for i in ids if i in table.summaries}
        try:
            moved = move_to_trash(ids, self.runs_root)
        except OSError as exc:
            self.notify(markup(f"cannot move to {trash_dir(self.runs_root)}: {exc.strerror or exc}"), title="Trash",
                        severity="error")
            return
        table.drop(moved)
        self.trashed_last = [kept[i] for i in moved if i in kept]
        left = len(ids) - len(moved)
        self.notify(markup(f"moved {len(moved)} run{'s' if len(moved) != 1 else ''} to {trash_dir(self.runs_root)}"
                           + (": u brings them back" if moved else "")
                           + (f"; {left} not on disk or still being written stayed" if left else "")), title="Trash")

    def action_undo_trash(self) -> None:
        if not self.trashed_last:
            self.notify("nothing to bring back from the trash", title="Trash")
            return
        restored = restore([s.id for s in self.trashed_last], self.runs_root)
        table = self.query_one(ResultsTable)
        for summary in self.trashed_last:
            if summary.id in restored:
                table.put(summary)
        self.trashed_last = []
        self.notify(f"brought back {len(restored)} run{'s' if len(restored) != 1 else ''}", title="Trash")

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
        missing = [p.name for p in presets if p.name not in {r.preset for r in runs}]
        if len(runs) < 2:
            self.notify("fewer than two Table II rows have a finished run: ctrl+t trains them", title="Compare",
                        severity="warning")
            return
        if missing:  # said, never dropped silently
            self.notify(markup(f"no finished run of {', '.join(missing)}: comparing the other {len(runs)} rows"),
                        title="Compare", severity="warning")
        self.open_compare(runs)

    def action_scatter(self) -> None:
        """Every run the results table shows, as a point: final score against one setting."""
        from .scatter import ScatterScreen

        table = self.query_one(ResultsTable)
        runs = table.shown()
        if not any(s.status == "done" for s in runs):
            self.notify("no finished run in the results table" + (" that the filter shows" if table.filter_text
                        else ""), title="Across runs", severity="warning")
            return
        self.push_screen(ScatterScreen(runs, table.filter_text, self.export_path.parent))

    def action_playground(self, runs: list[RunSummary] | None = None) -> None:
        """The playground for the marked runs (two at most answer side by side), else the one under the cursor."""
        from .playground import PlaygroundScreen

        table = self.query_one(ResultsTable)
        if runs is None:
            runs = [table.summaries[i] for i in table.marked if i in table.summaries] or \
                   [table.summaries[i] for i in [table.current_id()] if i in table.summaries]
        if not runs:
            self.notify("no run to draw for: the results table is empty", title="Playground", severity="warning")
            return
        if len(runs) > 2:
            self.notify(f"{len(runs)} runs marked: the first two answer", title="Playground")
        self.push_screen(PlaygroundScreen(runs[:2]))

    def open_compare(self, runs: list[RunSummary]) -> None:
        from .compare import CompareScreen

        self.push_screen(CompareScreen(runs, self.export_path.parent))
