"""The results table: one row per run, sortable by any column; runs already on disk appear at start."""

from __future__ import annotations

import time

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from workbench.format import STATUS_STYLE, counted, result_cells, setting, weights_label
from workbench.paper.architecture import weight_count
from workbench.paper.config import FIELDS
from workbench.records.filter import Filter, FilterError, parse_filter
from workbench.records.notebook import unfinished_last
from workbench.records.store import RunSummary
from workbench.tui.text import cell, markup
from workbench.tui.text_input import TextInput

# What a reader needs first comes first (the run column stays put when the table scrolls right).
COLUMNS = [("run", "run"), ("status", "status"), ("acc", "test acc %"), ("paper", "paper %"), ("diff", "Δ"),
           ("net", "net"), ("ws", "WS"), ("aux", "aux"), ("alpha", "α"), ("weights", "weights"),
           ("wall", "train time"),
           ("started", "started"), ("id", "id"), ("tags", "tags"), ("other", "other settings"), ("device", "device")]
SHOWN_ELSEWHERE = {"subnet", "weight_sharing", "aux_loss", "alpha", "device"}


def other_settings(summary: RunSummary) -> str:
    diff = {k: v for k, v in summary.config.differences().items() if k not in SHOWN_ELSEWHERE}
    return " ".join(f"{FIELDS[k].label}={setting(v)}" for k, v in diff.items())


def cells(summary: RunSummary) -> list:
    c = summary.config
    row = result_cells(summary)
    diff = summary.difference
    return [
        cell(row["name"]), cell(row["status"], style=STATUS_STYLE.get(summary.status, "")),
        Text(row["ours"], justify="right"), Text(row["paper"], justify="right"),
        Text(row["diff"], style="" if diff is None else ("green" if diff >= -0.03 else "red"), justify="right"),
        row["net"], row["ws"], row["aux"], row["alpha"], Text(weights_label(weight_count(c)), justify="right"),
        Text(row["train time"], justify="right"),
        started(summary.started_at), cell(summary.id), cell(", ".join(summary.tags)), other_settings(summary),
        cell(summary.device.split(" (")[0]),
    ]


def started(timestamp: float) -> str:
    """Local start time: the time alone today, the date too before."""
    if not timestamp:
        return "—"
    now = time.localtime()
    then = time.localtime(timestamp)
    same_day = then[:3] == now[:3]
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M", then)


def sort_value(summary: RunSummary, column: str):
    """A sortable value per column: numbers for numbers, missing values last."""
    c = summary.config
    numeric = {"acc": summary.mean, "paper": summary.paper.score if summary.paper else None,
               "diff": summary.difference, "wall": summary.wall_time, "alpha": c.alpha if c.aux_loss else None,
               "started": summary.started_at or None, "weights": weight_count(c)}
    if column in numeric:
        value = numeric[column]
        return (value is None, value if value is not None else 0.0)
    text = {"run": summary.name, "net": c.subnet, "ws": str(c.weight_sharing), "aux": str(c.aux_loss),
            "other": other_settings(summary), "device": summary.device, "status": summary.status,
            "id": summary.id, "tags": ", ".join(summary.tags)}[column]
    return (False, text.lower())


def header(label: str, arrow: str) -> Text:
    """A column's header with room for the sort arrow from the start: a column is as wide as its first header."""
    return Text(f"{label} {arrow or ' '}")


class ResultsTable(DataTable):
    """Rows keyed by run id; a click on a header sorts by it (again: reversed); so do `s` (the next column) and
    `r` (reversed) from the keyboard. The sorted column's header carries ▲ or ▼. `space` marks a run for the
    compare screen; a filter shows only the runs whose text holds every word of it."""

    BINDINGS = [Binding("s", "sort_next", "Sort", show=False), Binding("r", "sort_reverse", "Reverse sort", show=False),
                Binding("space", "toggle_mark", "Mark", show=False),
                Binding("c", "app.runs('compare')", "Compare"), Binding("a", "app.runs('scatter')", "Across"),
                Binding("p", "app.runs('playground')", "Play"), Binding("g", "app.runs('resume')", "Resume"),
                Binding("n", "app.runs('rename')", "Rename"),
                Binding("delete,backspace", "app.runs('trash_runs')", "Trash"),
                Binding("u", "app.runs('undo_trash')", "Undo"),
                Binding("T", "app.runs('browse_trash')", "Browse the trash", show=False),
                Binding("R", "app.runs('report')", "Reproduction report", show=False)]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, fixed_columns=1, **kwargs)
        self.summaries: dict[str, RunSummary] = {}
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.filter_text = ""
        self.shows: Filter = parse_filter("")
        self.marked: list[str] = []  # in the order marked: the compare screen keeps it

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(header(label, ""), key=key)

    def row_cells(self, summary: RunSummary) -> list:
        row = cells(summary)
        if summary.id in self.marked:
            row[0] = cell("● " + summary.name, style="bold")
        return row

    def put(self, summary: RunSummary) -> None:
        """Add a run, or update its row in place."""
        self.summaries[summary.id] = summary
        if summary.id in self.rows:
            with self.app.batch_update():
                for (key, _), value in zip(COLUMNS, self.row_cells(summary)):
                    self.update_cell(summary.id, key, value, update_width=True)
        elif self.shows(summary):
            if self.sort_column:
                self.apply_sort()
            else:
                self.add_row(*self.row_cells(summary), key=summary.id)

    def drop(self, ids: list[str]) -> None:
        """Rows of runs that are no longer on disk (moved to the trash) go."""
        for run_id in ids:
            self.summaries.pop(run_id, None)
            if run_id in self.marked:
                self.marked.remove(run_id)
            if run_id in self.rows:
                self.remove_row(run_id)

    def gone(self, ids: list[str]) -> None:
        """Runs another process moved out of the runs folder (`runs rm`): their rows go, and the user is told."""
        names = [self.summaries[i].name for i in ids if i in self.summaries]
        self.drop(ids)
        if names:
            self.app.notify(markup(f"{counted(len(names), 'run')} left the runs folder (moved or deleted elsewhere): "
                                   + ", ".join(names[:3]) + (" …" if len(names) > 3 else "")), title="Results")

    def set_filter(self, text: str) -> str:
        """Show the runs `text` finds; while it cannot mean anything (typed half-way, a key that is none), the
        last filter that could stays, and the reason is returned ('' when it applies)."""
        try:
            self.shows = parse_filter(text)
        except FilterError as exc:
            return str(exc)
        self.filter_text = text.strip()
        self.apply_sort()
        return ""

    def apply_sort(self) -> None:
        """Rebuild the rows: the runs the filter shows, in the sorted order, the cursor kept on its run."""
        runs = [s for s in self.summaries.values() if self.shows(s)]
        if self.sort_column:
            runs.sort(key=lambda s: sort_value(s, self.sort_column), reverse=self.sort_reverse)
            runs = unfinished_last(runs)  # failed and cancelled runs never top a sort, in either direction
        selected = self.current_id()
        with self.app.batch_update():
            self.clear()
            for s in runs:
                self.add_row(*self.row_cells(s), key=s.id)
            if selected in self.rows:
                self.move_cursor(row=self.get_row_index(selected))

    def current_id(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def action_toggle_mark(self) -> None:
        run_id = self.current_id()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self.update_cell(run_id, "run", self.row_cells(self.summaries[run_id])[0], update_width=True)  # "● " widens it
        if self.cursor_row < self.row_count - 1:
            self.move_cursor(row=self.cursor_row + 1)

    def sort_by(self, column: str) -> None:
        """Sort by a column; the same column again reverses. Accuracies start best first."""
        self.sort_reverse = not self.sort_reverse if self.sort_column == column else column in ("acc", "diff")
        self.sort_column = column
        for key, label in COLUMNS:
            arrow = ("▼" if self.sort_reverse else "▲") if key == column else ""
            self.columns[self.get_column_key(key)].label = header(label, arrow)
        self.apply_sort()

    def get_column_key(self, key: str):
        return next(k for k in self.columns if k.value == key)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(event.column_key.value)

    def action_sort_next(self) -> None:
        keys = [key for key, _ in COLUMNS]
        following = keys[(keys.index(self.sort_column) + 1) % len(keys)] if self.sort_column else keys[0]
        self.sort_by(following)

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort_column or COLUMNS[0][0])

    def shown(self) -> list[RunSummary]:
        """The runs in the order the table shows them."""
        return [self.summaries[row.key.value] for row in self.ordered_rows if row.key.value in self.summaries]


class ResultsFilter(TextInput):
    """The results table's filter (records/filter.py's language): applied as it is typed; red while it cannot
    mean anything (typed half-way, a key that is none), when the table keeps the last filter that could; Enter
    says why, or hands the keyboard to the table."""

    def on_input_changed(self, event: TextInput.Changed) -> None:
        why = self.app.query_one(ResultsTable).set_filter(event.value)
        self.set_class(bool(why), "-invalid")
        self.tooltip = markup(why) if why else None

    def on_input_submitted(self, event: TextInput.Submitted) -> None:
        why = self.app.query_one(ResultsTable).set_filter(event.value)
        if why:
            self.app.notify(markup(why), title="Filter", severity="error", timeout=8)
            return
        self.app.query_one(ResultsTable).focus()
