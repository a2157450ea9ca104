"""The results table: one row per run, sortable by any column; runs already on disk appear at start."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from ..config import FIELDS
from ..format import STATUS_STYLE, duration, mark, mean_std_label, paper_label, setting, signed_points
from ..runs import RunSummary

COLUMNS = [("run", "run"), ("net", "net"), ("ws", "WS"), ("aux", "aux"), ("alpha", "α"), ("acc", "test acc %"),
           ("paper", "paper %"), ("diff", "Δ"), ("wall", "wall"), ("status", "status"), ("other", "other settings"),
           ("device", "device")]
SHOWN_ELSEWHERE = {"subnet", "weight_sharing", "aux_loss", "alpha", "device"}


def other_settings(summary: RunSummary) -> str:
    diff = {k: v for k, v in summary.config.differences().items() if k not in SHOWN_ELSEWHERE}
    return " ".join(f"{FIELDS[k].label}={setting(v)}" for k, v in diff.items())


def cells(summary: RunSummary) -> list:
    c = summary.config
    style = STATUS_STYLE.get(summary.status, "")
    diff = summary.difference
    return [
        summary.name, c.subnet, mark(c.weight_sharing), mark(c.aux_loss),
        f"{c.alpha:g}" if c.aux_loss else "—",
        Text(mean_std_label(summary.mean, summary.std), justify="right"),
        Text(paper_label(summary), justify="right"),
        Text(signed_points(diff), style="" if diff is None else ("green" if diff >= -0.03 else "red"), justify="right"),
        Text(duration(summary.wall_time) if summary.wall_time else "—", justify="right"),
        Text(summary.status, style=style), other_settings(summary), summary.device.split(" (")[0],
    ]


def sort_value(summary: RunSummary, column: str):
    """A sortable value per column: numbers for numbers, missing values last."""
    c = summary.config
    numeric = {"acc": summary.mean, "paper": summary.paper.score if summary.paper else None,
               "diff": summary.difference, "wall": summary.wall_time, "alpha": c.alpha if c.aux_loss else None}
    if column in numeric:
        value = numeric[column]
        return (value is None, value if value is not None else 0.0)
    text = {"run": summary.name, "net": c.subnet, "ws": str(c.weight_sharing), "aux": str(c.aux_loss),
            "other": other_settings(summary), "device": summary.device, "status": summary.status}[column]
    return (False, text.lower())


class ResultsTable(DataTable):
    """Rows keyed by run id; a click on a header sorts by it (again: reversed); so do `s` (the next column) and
    `r` (reversed) from the keyboard. The sorted column's header carries ▲ or ▼."""

    BINDINGS = [Binding("s", "sort_next", "Sort by next column"), Binding("r", "sort_reverse", "Reverse sort")]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.summaries: dict[str, RunSummary] = {}
        self.sort_column: str | None = None
        self.sort_reverse = False

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def put(self, summary: RunSummary) -> None:
        """Add a run, or update its row in place."""
        self.summaries[summary.id] = summary
        row = cells(summary)
        if summary.id in self.rows:
            with self.app.batch_update():
                for (key, _), value in zip(COLUMNS, row):
                    self.update_cell(summary.id, key, value)
        else:
            self.add_row(*row, key=summary.id)
            if self.sort_column:
                self.apply_sort()

    def apply_sort(self) -> None:
        column = self.sort_column or "run"
        ordered = sorted(self.summaries.values(), key=lambda s: sort_value(s, column), reverse=self.sort_reverse)
        selected = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value if self.row_count else None
        with self.app.batch_update():
            self.clear()
            for s in ordered:
                self.add_row(*cells(s), key=s.id)
            if selected in self.rows:
                self.move_cursor(row=self.get_row_index(selected))

    def sort_by(self, column: str) -> None:
        """Sort by a column; the same column again reverses. Accuracies start best first."""
        self.sort_reverse = not self.sort_reverse if self.sort_column == column else column in ("acc", "diff")
        self.sort_column = column
        for key, label in COLUMNS:
            arrow = (" ▼" if self.sort_reverse else " ▲") if key == column else ""
            self.columns[self.get_column_key(key)].label = Text(label + arrow)
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
