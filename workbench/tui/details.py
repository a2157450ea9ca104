"""A run's details: per-round accuracies, its curves, its full config, and loading it into the form."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Label, Static
from textual_plotext import PlotextPlot

from ..config import FIELDS
from ..format import duration, mean_std_label, pct, setting
from ..runs import RunSummary, load_history
from .live import Curves, draw_curves


class RunDetails(ModalScreen[str | None]):
    """Dismissed with "load" when the user wants this run's config in the form."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close"), Binding("l", "load", "Load into form")]

    def __init__(self, summary: RunSummary) -> None:
        super().__init__()
        self.summary = summary

    def compose(self) -> ComposeResult:
        s = self.summary
        with Vertical(id="details"):
            yield Label(f"[b]{s.name}[/b] · {s.status}" + (f": {s.reason}" if s.reason else ""), id="details-title")
            yield Static(
                f"test accuracy {mean_std_label(s.mean, s.std)} % over {len(s.round_acc)} rounds"
                + (f" · paper {s.paper.label()} % (Table {s.paper.table})" if s.paper else "")
                + f" · {duration(s.wall_time)} · {s.device} · {s.engine} engine\n"
                + f"digits: {s.data_source} · run {s.id}", id="details-summary")
            with Horizontal(id="details-body"):
                with VerticalScroll(id="details-left"):
                    yield DataTable(id="details-rounds", cursor_type="none", zebra_stripes=True)
                    yield Static(self.config_text(), id="details-config")
                with Vertical(id="details-plots"):
                    yield PlotextPlot(id="details-loss")
                    yield PlotextPlot(id="details-acc")
            with Horizontal(id="details-buttons"):
                yield Button("Load into form (l)", id="load", variant="primary", compact=True)
                yield Button("Close (esc)", id="close", compact=True)

    def config_text(self) -> str:
        cfg = self.summary.config.to_dict()
        return "\n".join(f"{FIELDS[k].label:<15} {setting(v)}" for k, v in cfg.items())

    def on_mount(self) -> None:
        table = self.query_one("#details-rounds", DataTable)
        table.add_columns("round", "test %", "train %", "digits %", "loss", "epochs", "status")
        for r in self.summary.rounds:
            table.add_row(r.get("round"), pct(r.get("test_acc")), pct(r.get("train_acc")), pct(r.get("digit_acc")),
                          "—" if r.get("train_loss") is None else f"{r['train_loss']:.4f}", r.get("epochs", ""),
                          r.get("status", ""))
        curves = Curves()
        if self.summary.path is not None:
            try:
                for rec in load_history(self.summary.path):
                    curves.add(rec)
            except (OSError, ValueError) as exc:
                self.notify(f"history of {self.summary.id} cannot be read: {exc}", severity="warning")
        draw_curves(self.query_one("#details-loss", PlotextPlot), self.query_one("#details-acc", PlotextPlot), curves)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss("load" if event.button.id == "load" else None)

    def action_load(self) -> None:
        self.dismiss("load")

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
