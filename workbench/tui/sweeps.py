"""The sweep screen: pick a spec, start and cancel its workers, watch the trials and the best score evolve."""

from __future__ import annotations

import time
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from ..config import ConfigError
from ..report import mean_std_label, pct
from ..sweep import (SweepSpec, Trial, all_trials, default_storage, export_trials, load_spec, open_storage,
                     params_text, record_spec, stage_summaries, start_workers, trials_csv_path)

POLL_S = 1.0


class SweepUpdate(Message):
    def __init__(self, trials: list[Trial], running: bool, note: str = "") -> None:
        super().__init__()
        self.trials = trials
        self.running = running
        self.note = note


class SweepScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("ctrl+e", "export", "Export trials"),
                Binding("ctrl+b", "cancel", "Cancel sweep", priority=True)]

    def __init__(self, specs_dir: Path) -> None:
        super().__init__()
        self.specs = sorted(specs_dir.glob("*.toml"))
        self.spec: SweepSpec | None = None
        self.study = ""
        self.storage_url = ""
        self.procs: list = []
        self.stop = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="sweep"):
            with Horizontal(classes="sweep-row"):
                yield Label("Spec", classes="sweep-label")
                yield Select([(p.stem, str(p)) for p in self.specs], prompt="choose a sweep spec…", id="sweep-spec",
                             compact=True)
            with Horizontal(classes="sweep-row"):
                yield Label("Workers", classes="sweep-label")
                yield Input("1", id="sweep-workers", compact=True)
                yield Label("Storage", classes="sweep-label")
                yield Input(placeholder="journal file under runs/sweeps (or postgresql://…)", id="sweep-storage",
                            compact=True)
            with Horizontal(classes="sweep-row"):
                yield Button("Start", id="sweep-start", variant="primary", compact=True)
                yield Button("Cancel", id="sweep-cancel", variant="error", compact=True)
                yield Button("Export trials", id="sweep-export", compact=True)
            yield Static("", id="sweep-title")
            yield DataTable(id="sweep-stages", cursor_type="none")
            yield Static("", id="sweep-status")
            yield DataTable(id="sweep-trials", zebra_stripes=True, cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#sweep-stages", DataTable).add_columns("stage", "trials", "best validation %",
                                                               "test % there", "params")
        self.query_one("#sweep-trials", DataTable).add_columns("stage", "#", "state", "params", "val %", "test %",
                                                               "s", "worker")

    def on_select_changed(self, event: Select.Changed) -> None:
        if not isinstance(event.value, str):
            return
        try:
            self.spec = load_spec(Path(event.value))
        except ConfigError as exc:
            self.spec = None
            self.notify(str(exc), title="Bad sweep spec", severity="error", timeout=10)
            return
        self.study = self.spec.name
        sizes = ", ".join(f"{s.name} ({s.size()})" for s in self.spec.stages)
        self.query_one("#sweep-title", Static).update(f"[b]{self.spec.title}[/b]\nstages: {sizes}")
        self.show(self.load_existing(), running=False)

    def load_existing(self) -> list[Trial]:
        storage_url = self.storage_choice()
        if "://" not in storage_url and not Path(storage_url).exists():
            return []
        try:
            return all_trials(self.spec, open_storage(storage_url), self.study)
        except Exception:
            return []

    def storage_choice(self) -> str:
        return self.query_one("#sweep-storage", Input).value.strip() or default_storage(self.study)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"sweep-start": self.action_start, "sweep-cancel": self.action_cancel,
         "sweep-export": self.action_export}[event.button.id]()

    def action_start(self) -> None:
        if self.spec is None:
            self.notify("choose a sweep spec first", severity="error")
            return
        if self.procs and any(p.is_alive() for p in self.procs):
            self.notify("this sweep is already running")
            return
        raw = self.query_one("#sweep-workers", Input).value.strip()
        if not raw.isdigit() or not 1 <= int(raw) <= 64:
            self.notify(f"Workers: a whole number in 1..64, got {raw!r}", title="Cannot start", severity="error")
            return
        self.storage_url = self.storage_choice()
        self.stop = False
        self.run_sweep(int(raw))

    @work(thread=True, group="sweep", exclusive=True, exit_on_error=False)
    def run_sweep(self, workers: int) -> None:
        """Starts the worker processes and watches the storage; never touches a widget."""
        spec, study, url = self.spec, self.study, self.storage_url
        try:
            storage = open_storage(url)
            record_spec(storage, study, spec)
            self.procs = start_workers(spec, url, study, workers)
        except Exception as exc:
            self.post_message(SweepUpdate([], False, f"cannot start: {type(exc).__name__}: {exc}"))
            return
        started = time.monotonic()
        while any(p.is_alive() for p in self.procs):
            if self.stop:
                for p in self.procs:
                    p.terminate()
                for p in self.procs:
                    p.join(5)
                self.post_message(SweepUpdate(all_trials(spec, storage, study), False,
                                              "cancelled: start again to continue the study"))
                return
            self.post_message(SweepUpdate(all_trials(spec, storage, study), True,
                                          f"running {workers} worker(s) · {time.monotonic() - started:.0f} s"))
            time.sleep(POLL_S)
        failed = [p.exitcode for p in self.procs if p.exitcode not in (0, None)]
        note = f"{len(failed)} worker(s) failed" if failed else f"finished in {time.monotonic() - started:.0f} s"
        self.post_message(SweepUpdate(all_trials(spec, storage, study), False, note))

    def on_sweep_update(self, message: SweepUpdate) -> None:
        self.show(message.trials, message.running, message.note)
        if message.note and not message.running:
            self.notify(message.note, title=f"Sweep {self.study}")

    def show(self, trials: list[Trial], running: bool, note: str = "") -> None:
        if self.spec is None:
            return
        stages = self.query_one("#sweep-stages", DataTable)
        stages.clear()
        for s in stage_summaries(self.spec, trials):
            best = s.best
            stages.add_row(f"{s.index + 1}. {s.stage.name}", f"{s.done}/{s.stage.size()}",
                           mean_std_label(best.val_mean, best.val_std) if best else "—",
                           mean_std_label(best.test_mean, best.test_std) if best else "—",
                           params_text(best.params) if best else "")
        table = self.query_one("#sweep-trials", DataTable)
        table.clear()
        for t in sorted(trials, key=lambda t: (t.stage, t.number)):
            table.add_row(str(t.stage + 1), str(t.number), t.state, params_text(t.params), pct(t.val_mean),
                          pct(t.test_mean), "" if t.seconds is None else f"{t.seconds:.1f}", t.worker)
        self.query_one("#sweep-status", Static).update(note or ("running" if running else ""))

    def action_cancel(self) -> None:
        if not self.procs or not any(p.is_alive() for p in self.procs):
            self.notify("no sweep is running")
            return
        self.stop = True
        self.notify("stopping the sweep's workers…")

    def action_export(self) -> None:
        if self.spec is None:
            self.notify("choose a sweep spec first", severity="error")
            return
        url = self.storage_choice()
        out = trials_csv_path(self.study, url)
        try:
            export_trials(self.spec, open_storage(url), self.study, out)
        except Exception as exc:
            self.notify(f"cannot export: {exc}", severity="error")
            return
        self.notify(f"trials written to {out.resolve()}", title="Exported")

    def on_unmount(self) -> None:
        self.stop = True
