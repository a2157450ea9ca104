"""What the app does with the runs of its results table: their details, export, compare, across runs, the
reproduction report, the playground, resume, and the trash with undo. Plain state and calls, no widget of its own: the app's bindings route
here, so the app keeps layout, bindings and routing."""

from __future__ import annotations

from workbench.analysis.reproduction import reproduction
from workbench.export.reproduction import write_report
from workbench.format import counted
from workbench.paper.presets import TABLE_II
from workbench.records.checkpoint import ResumeUnreadable
from workbench.records.csv_export import export_csv
from workbench.records.notebook import annotate, latest_row_runs
from workbench.records.store import RunSummary
from workbench.records.trash import Outcome, TrashRefused, move_to_trash, restore, trash_dir
from workbench.sweep import stage_tables
from workbench.training.continuing import continuation_of
from workbench.tui.compare import CompareScreen
from workbench.tui.confirm import Confirm, NotesDialog
from workbench.tui.details import RunDetails
from workbench.tui.form import ConfigForm
from workbench.tui.playground import PlaygroundScreen
from workbench.tui.results import ResultsTable
from workbench.tui.scatter import ScatterScreen
from workbench.tui.trash import TrashScreen
from workbench.tui.text import markup


class RunsNotebook:
    """What the app does with the runs of its results table; the app's actions route here. Asks of its app:
    presets, export_path, runs_root, engine, the run queue (runs, enqueue), and the screen and notice calls."""

    def __init__(self, app):
        self.app = app
        self.trashed_last: list[RunSummary] = []  # the runs the last move to the trash took: `u` brings them back

    def details(self, summary: RunSummary) -> None:
        """A run's details, from which it loads into the form, opens in the playground or resumes."""

        def load(answer: str | None) -> None:
            if answer == "load":
                preset = self.app.presets.get(summary.preset or "")
                self.app.query_one(ConfigForm).set_config(summary.config, preset)
                self.app.notify(f"form loaded from {markup(summary.name)}")
            elif answer == "playground":
                self.playground([summary])
            elif answer == "resume":
                self.resume_run(summary)

        self.app.push_screen(RunDetails(summary), load)

    def resume(self) -> None:
        table = self.app.query_one(ResultsTable)
        self.resume_run(table.summaries.get(table.current_id()))

    def resume_run(self, summary: RunSummary | None) -> None:
        """A cancelled run queued to continue from its kept state to its planned epochs, on its engine: it trains
        as if it had never stopped, and its record replaces the cancelled one (which goes to the trash)."""
        if summary is None:
            self.app.notify("no run to resume: the results table is empty", title="Resume", severity="warning")
            return
        if summary.status != "cancelled":
            self.app.notify(markup(f"{summary.name} is {summary.status}: a cancelled run continues here; "
                               f"`digit-workbench resume {summary.id} --epochs N` extends a done one"), title="Resume")
            return
        queued = [*self.app.runs.running, *self.app.runs.waiting]
        if any(item.run.resume and item.run.resume.continues == summary.id for item in queued):
            self.app.notify(markup(f"{summary.name} is queued to continue already"), title="Resume")
            return
        try:
            run, engine, _ = continuation_of(summary.id, self.app.runs_root)
        except (LookupError, ResumeUnreadable) as exc:
            self.app.notify(markup(str(exc)), title="Cannot resume", severity="error", timeout=10)
            return
        if engine != self.app.engine:
            self.app.notify(markup(f"{summary.name} trained on the {engine} engine and this app trains on {self.app.engine}: "
                               f"`digit-workbench resume {summary.id}` continues it"), title="Cannot resume",
                        severity="error", timeout=10)
            return
        reached = min((s.epoch for s in run.resume.states.values()), default=0)
        recorded = max((int(r.get("epochs") or 0) for r in summary.rounds), default=reached)  # as the record says
        again = (f"; epochs {reached + 1}–{recorded}, recorded after it, train again to the same numbers"
                 if recorded > reached else "")
        self.app.enqueue(run)
        self.app.notify(markup(f"queued {run.name}: continues from its last checkpoint, epoch {reached} of "
                               f"{run.config.epochs}{again}"), title="Resume")

    def rename(self) -> None:
        """The run under the cursor: its name, tags and note, edited in one dialog (the details' `t` too)."""
        table = self.app.query_one(ResultsTable)
        summary = table.summaries.get(table.current_id())
        if summary is None or summary.path is None:
            self.app.notify("no saved run under the cursor to rename", title="Rename", severity="warning")
            return

        def save(answer) -> None:
            if answer is None:
                return
            name, tags, note = answer
            try:
                table.put(annotate(summary, tags, note, name))
            except OSError as exc:
                self.app.notify(markup(f"cannot rename {summary.name}: {exc.strerror or exc}"), title="Rename",
                                severity="error")

        self.app.push_screen(NotesDialog(summary.name, summary.tags, summary.note), save)

    def trash_runs(self) -> None:
        """The marked runs, else the one under the cursor, into the runs folder's trash (whole, one rename each)."""
        table = self.app.query_one(ResultsTable)
        ids = list(table.marked) or [i for i in [table.current_id()] if i is not None]
        if not ids:
            self.app.notify("no run to move: the results table is empty", title="Trash", severity="warning")
            return
        kept = {i: table.summaries[i] for i in ids if i in table.summaries}
        try:
            out = move_to_trash(ids, self.app.runs_root)
        except TrashRefused as exc:
            out = Outcome(exc.done, [exc.message])
        table.drop(out.done)
        self.trashed_last = [kept[i] for i in out.done if i in kept]
        where = trash_dir(self.app.runs_root)
        self.app.notify(markup(f"moved {counted(len(out.done), 'run')} to {where}"
                               + (": u brings them back" if out.done else "")
                               + "".join(f"\n{line}" for line in out.left[:3])
                               + (f"\n(and {len(out.left) - 3} more)" if len(out.left) > 3 else "")),
                        title="Trash", severity="error" if out.left else "information", timeout=10 if out.left else 5)

    def browse_trash(self) -> None:
        """The trash's records, to bring back any of them (not only the last delete's)."""
        self.app.push_screen(TrashScreen(self.app.runs_root))

    def undo_trash(self) -> None:
        if not self.trashed_last:
            self.app.notify("nothing to bring back from the trash", title="Trash")
            return
        try:
            out = restore([s.id for s in self.trashed_last], self.app.runs_root)
        except TrashRefused as exc:
            out = Outcome(exc.done, [exc.message])
        table = self.app.query_one(ResultsTable)
        for summary in self.trashed_last:
            if summary.id in out.done:
                table.put(summary)
        # what a refusal kept in the trash can be asked for again
        self.trashed_last = [s for s in self.trashed_last if s.id not in out.done] if out.left else []
        self.app.notify(markup(f"brought back {counted(len(out.done), 'run')}"
                               + "".join(f"\n{line}" for line in out.left[:3])), title="Trash",
                        severity="error" if out.left else "information")

    def export(self, replace: bool = False) -> None:
        """The results table (the rows the filter shows) to CSV; an export already there is replaced only when the
        user says so."""
        if self.app.export_path.exists() and not replace:
            self.app.push_screen(Confirm(f"{markup(self.app.export_path)} exists. Replace it?"),
                             lambda yes: self.export(replace=True) if yes else None)
            return
        summaries = self.app.query_one(ResultsTable).shown()
        try:
            path = export_csv(summaries, self.app.export_path)
        except (OSError, ValueError) as exc:
            self.app.notify(markup(f"cannot write {self.app.export_path}: {exc}"), title="Export", severity="error")
            return
        self.app.notify(markup(f"{len(summaries)} runs written to {path.resolve()}"), title="Exported")

    def compare(self) -> None:
        """The marked runs on the compare screen, in the order marked."""
        table = self.app.query_one(ResultsTable)
        runs = [table.summaries[i] for i in table.marked if i in table.summaries]
        if len(runs) < 2:
            self.app.notify("mark two or more runs in the results table with space first", title="Compare",
                        severity="warning")
            return
        self.open_compare(runs)

    def compare_table2(self) -> None:
        """The latest run of each Table II row whose config is still the row's."""
        presets = [self.app.presets[name] for name in TABLE_II if name in self.app.presets]
        runs = latest_row_runs(list(self.app.query_one(ResultsTable).summaries.values()), presets)
        missing = [p.name for p in presets if p.name not in {r.preset for r in runs}]
        if len(runs) < 2:
            self.app.notify("fewer than two Table II rows have a finished run: ctrl+t trains them", title="Compare",
                        severity="warning")
            return
        if missing:  # said, never dropped silently
            self.app.notify(markup(f"no finished run of {', '.join(missing)}: comparing the other {len(runs)} rows"),
                        title="Compare", severity="warning")
        self.open_compare(runs)

    def scatter(self) -> None:
        """Every run the results table shows, as a point: final score against one setting."""
        table = self.app.query_one(ResultsTable)
        runs = table.shown()
        if not any(s.status == "done" for s in runs):
            self.app.notify("no finished run in the results table" + (" that the filter shows" if table.filter_text
                        else ""), title="Across runs", severity="warning")
            return
        self.app.push_screen(ScatterScreen(runs, table.filter_text, self.app.export_path.parent))

    def report(self) -> None:
        """The paper reproduced from the runs the results table shows (`digit-workbench report`), as one HTML page
        beside the export; drawn in a thread (its figures take seconds), said when written."""
        table = self.app.query_one(ResultsTable)
        rep = reproduction(table.shown(), self.app.presets)
        if not rep.runs:
            self.app.notify("no finished run in the results table" + (" that the filter shows" if table.filter_text
                            else "") + " is a row of the paper (ctrl+t trains Table II)", title="Report",
                            severity="warning")
            return
        out = self.app.export_path.parent / "reproduction.html"
        self.app.notify(f"writing the report from {counted(len(rep.runs), 'run')}…", title="Report")

        def write() -> None:
            try:
                write_report(rep, out, "html", stage_tables(self.app.runs_root))
            except OSError as exc:
                self.app.call_from_thread(self.app.notify, markup(f"cannot write {out}: {exc.strerror or exc}"),
                                          title="Report", severity="error")
                return
            missing = f"; {len(rep.missing)} of the paper's rows have no run" if rep.missing else ""
            self.app.call_from_thread(self.app.notify, markup(f"wrote {out.resolve()}{missing}"), title="Report")

        self.app.run_worker(write, thread=True, group="report", exclusive=True, exit_on_error=False)

    def playground(self, runs: list[RunSummary] | None = None) -> None:
        """The playground for the marked runs (two at most answer side by side), else the one under the cursor."""
        table = self.app.query_one(ResultsTable)
        if runs is None:
            runs = [table.summaries[i] for i in table.marked if i in table.summaries] or \
                   [table.summaries[i] for i in [table.current_id()] if i in table.summaries]
        if not runs:
            self.app.notify("no run to draw for: the results table is empty", title="Playground", severity="warning")
            return
        if len(runs) > 2:
            self.app.notify(f"{len(runs)} runs marked: the first two answer", title="Playground")
        self.app.push_screen(PlaygroundScreen(runs[:2]))

    def open_compare(self, runs: list[RunSummary]) -> None:
        self.app.push_screen(CompareScreen(runs, self.app.export_path.parent))
