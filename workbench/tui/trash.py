"""The trash, browsed in the app (`T` in the results table): every record in runs/.trash with when it started and
its score; `r` brings the marked runs (or the one under the cursor) back, `space` marks. Deleting for good stays
`digit-workbench runs empty-trash`: the app never deletes a record. records/trash.py does the moving."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from workbench.format import counted, mean_std_label, plain
from workbench.records.store import RecordUnreadable, RunSummary, read_record
from workbench.records.trash import Outcome, TrashRefused, restore, trash_dir, trashed
from workbench.tui.messages import RunUpdated
from workbench.tui.text import markup


class TrashScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("space", "mark", "Mark"),
                Binding("r", "restore", "Restore")]

    def __init__(self, runs_root: Path) -> None:
        super().__init__()
        self.runs_root = runs_root
        self.summaries: dict[str, RunSummary] = {}
        self.marked: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="trash-caption")
        yield DataTable(id="trash-table", cursor_type="row", zebra_stripes=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.title = "Trash"
        table = self.query_one(DataTable)
        table.add_columns("", "run", "status", "test acc %", "started", "id")  # the id last: the least read
        self.load()
        table.focus()

    def load(self) -> None:
        """The trash as it is on disk now (a trash that is no plain folder is said, not read)."""
        table = self.query_one(DataTable)
        table.clear()
        try:
            runs = trashed(self.runs_root)
        except TrashRefused as exc:
            runs, why = [], str(exc)
        else:
            why = ""
        self.summaries = {s.id: s for s in runs}
        self.marked = [i for i in self.marked if i in self.summaries]
        for s in sorted(runs, key=lambda s: s.started_at, reverse=True):
            table.add_row("●" if s.id in self.marked else "", Text(plain(s.name)), s.status,
                          mean_std_label(s.mean, s.std), Text(time_text(s.started_at)), s.id, key=s.id)
        where = markup(trash_dir(self.runs_root))
        self.query_one("#trash-caption", Static).update(
            markup(why) if why else
            f"{counted(len(runs), 'run')} in {where} · space marks · r brings back · deleting for good: "
            "`digit-workbench runs empty-trash`")

    def current(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def action_mark(self) -> None:
        run_id = self.current()
        if run_id is None:
            return
        self.marked.remove(run_id) if run_id in self.marked else self.marked.append(run_id)
        table = self.query_one(DataTable)
        table.update_cell(run_id, table.ordered_columns[0].key, "●" if run_id in self.marked else "")
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def action_restore(self) -> None:
        ids = list(self.marked) or [i for i in [self.current()] if i is not None]
        if not ids:
            self.notify("the trash is empty", title="Trash")
            return
        try:
            out = restore(ids, self.runs_root)
        except TrashRefused as exc:
            out = Outcome(exc.done, [exc.message])
        for run_id in out.done:  # back in the results table at once, read where it is now
            try:
                self.app.post_message(RunUpdated(read_record(self.runs_root / run_id)))
            except RecordUnreadable:
                continue
        self.notify(markup(f"brought back {counted(len(out.done), 'run')}"
                           + "".join(f"\n{line}" for line in out.left[:3])), title="Trash",
                    severity="error" if out.left else "information")
        self.load()


def time_text(started_at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(started_at)) if started_at else "—"
