"""The digit-workbench Textual app: configure, queue and train runs, watch them, compare and export."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterable

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.clock import Clock
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane

from workbench import __version__
from workbench.format import plain, score_line
from workbench.paper.config import ConfigError
from workbench.paper.presets import TABLE_II, Preset, load_presets
from workbench.records.folder import runs_dir, tidy_abandoned
from workbench.records.store import RunSummary
from workbench.sweep import spec_paths
from workbench.training.group import NamedRun
from workbench.tui.confirm import Choose, Confirm
from workbench.tui.form import ConfigForm
from workbench.tui.live import LiveView
from workbench.tui.loading import Digits, RunsWatcher
from workbench.tui.messages import (DigitsFailed, DigitsReady, RunFinished, RunProgress, RunsFound, RunsGone,
                                    RunUpdated, finished_notices)
from workbench.tui.notebook import RunsNotebook
from workbench.tui.results import ResultsFilter, ResultsTable
from workbench.tui.run_queue import QueueItem, RunQueue
from workbench.tui.sweeps import SweepScreen
from workbench.tui.text import cell, markup
from workbench.tui.text_input import after_typing
from workbench.tui.training import train_queue_group

RESCAN_S = 3.0  # how often the runs folder is looked at for runs written by other processes


VIEWS = Binding.Group("views")


class WorkbenchApp(App):
    CSS_PATH = str(Path(__file__).with_name("workbench.tcss"))
    TITLE = f"digit-workbench {__version__}"
    SUB_TITLE = "digits: loading…"
    # The views first: on a narrow terminal the footer keeps what comes first.
    BINDINGS = [
        # one footer item, "f1 f2 f3 f4 views", so the four never fall off a narrow footer (hovered, each names its view)
        Binding("f1", "show_form", "Form", group=VIEWS),
        Binding("f2", "show_tab('live')", "Live", group=VIEWS),
        Binding("f3", "show_tab('results')", "Results", group=VIEWS),
        Binding("f4", "sweeps", "Sweeps", group=VIEWS),
        Binding("ctrl+r", "run", "Run", priority=True, tooltip="Queue the form's configuration"),
        Binding("ctrl+t", "run_table2", "Table II", priority=True, tooltip="Queue the eight rows of Table II"),
        # not a priority binding: on the sweep screen ctrl+b is that screen's, and cancels the sweep
        Binding("ctrl+b", "cancel", "Cancel", tooltip="Stop the current run (it is kept)"),
        Binding("ctrl+o", "export", "Export", priority=True, tooltip="Write the results table to CSV"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+p", "command_palette", "Palette", tooltip="Every action, by name"),
        Binding("ctrl+l", "clear_queue", "Clear queue", priority=True, show=False),
        Binding("slash", "filter", "Filter runs", show=False),
        # Tab moves the focus before the next key reaches a field: typed fast ("tags<Tab>note"), a field's own
        # Tab would act only after the letters behind it had landed in the field it was leaving (textual#6605)
        Binding("tab", "focus_next", "Next field", show=False, priority=True, system=True),
        Binding("shift+tab", "focus_previous", "Previous field", show=False, priority=True, system=True),
        Binding("escape", "close_help", "Close keys", show=False),
    ]

    def __init__(self, runs_root: Path | None = None, export_path: Path | None = None, engine: str = "batched",
                 load_digits_at_start: bool = True, clock: Clock | None = None,
                 sweep_specs: Path | None = None) -> None:
        super().__init__()
        self.sweep_specs = sweep_specs
        self.clock = clock
        self.runs_root = runs_root or runs_dir()
        self.export_path = export_path or Path("runs-export.csv")
        self.engine = engine
        self.load_digits_at_start = load_digits_at_start
        self.presets: dict[str, Preset] = {}
        self.preset_problem = ""
        try:
            self.presets = load_presets()
        except ConfigError as exc:
            self.preset_problem = str(exc)
        self.runs = RunQueue()
        self.watcher = RunsWatcher(self.runs_root)
        self.quitting = False
        self.digits = Digits()
        self.notebook = RunsNotebook(self)
        self.set_class(True, "-form-view")  # before the widgets exist: a class set at mount restyles them all

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield ConfigForm(self.presets, id="form")
                yield Static("", id="digits")
            with TabbedContent(id="tabs", initial="live"):
                with TabPane("Live", id="live"):
                    yield LiveView(clock=self.clock, id="liveview")
                with TabPane("Results", id="results"):
                    yield ResultsFilter(placeholder="filter (/): words of a run's name, tags or settings; alpha>0.3, "
                                                "status=done, tag=quick, name~fcn", id="results-filter", compact=True)
                    yield ResultsTable(id="results-table")
        yield Static("", id="queue")
        # the palette as a key like the others: Textual's own item sits over the keys of a full footer ('palettet')
        yield Footer(compact=True, show_command_palette=False)

    # Below NARROW columns the form and the views (live, results) take the whole width in turn (f1 / f2 f3).
    NARROW = 100

    def on_resize(self, event) -> None:
        self.set_narrow(event.size.width < self.NARROW)

    def set_narrow(self, narrow: bool) -> None:
        self.set_class(narrow, "-narrow")

    def on_mount(self) -> None:
        self.set_narrow(self.size.width < self.NARROW)
        self.query_one("#preset").focus()  # the keyboard starts at the first choice a user makes
        if self.preset_problem:
            self.notify(markup(self.preset_problem), title="Presets", severity="error", timeout=10)
        for note in tidy_abandoned(self.runs_root):
            self.notify(markup(note), title="A run that did not finish", severity="warning")
        self.watcher.look({}, self.on_runs_found)
        self.set_interval(RESCAN_S, self.rescan_runs)
        self.query_one("#digits", Static).update("digits: loading…")
        self.update_queue_bar()
        if self.load_digits_at_start:
            # after the first screen is drawn: importing torch holds the interpreter for seconds
            self.call_after_refresh(self.prepare)

    @work(thread=True, group="rescan", exclusive=True, exit_on_error=False)
    def rescan_runs(self) -> None:
        """Reads the records other processes wrote since the last look (only their new folders)."""
        self.watcher.look(dict(self.query_one(ResultsTable).summaries), self.post_message)

    def on_runs_gone(self, message: RunsGone) -> None:
        self.query_one(ResultsTable).gone(message.ids)

    def on_run_updated(self, message: RunUpdated) -> None:
        self.query_one(ResultsTable).put(message.summary)

    def on_runs_found(self, message: RunsFound) -> None:
        table = self.query_one(ResultsTable)
        for s in message.summaries:
            if s.id not in table.summaries:
                table.put(s)
        for problem in message.problems:
            self.notify(markup(problem), title="Skipped a run record", severity="warning")

    # ------------------------------------------------------------------ digits and torch, off the UI thread

    @work(thread=True, group="prepare", exit_on_error=False)
    def prepare(self) -> None:
        self.digits.prepare(self.post_message)

    def on_digits_ready(self, message: DigitsReady) -> None:
        self.sub_title = f"digits: {plain(message.source_name)}"
        self.query_one("#digits", Static).update(f"digits: {markup(message.source_name)}")
        form = self.query_one(ConfigForm)
        form.digits = (message.source_name, message.most_pairs) if message.most_pairs else None
        form.set_cuda(message.cuda_available, message.cuda_reason)

    def on_digits_failed(self, message: DigitsFailed) -> None:
        self.query_one("#digits", Static).update(f"[red]digits unavailable:[/] {message.reason}")
        self.notify(markup(message.reason), title="Digits", severity="error", timeout=10)

    # ------------------------------------------------------------------ the queue

    def enqueue(self, run: NamedRun, start: bool = True) -> QueueItem:
        item = self.runs.add(run)
        if start:
            self.start_next()
        self.update_queue_bar()
        return item

    def start_next(self) -> None:
        """Everything waiting starts as one group, as `digit-workbench table` would train it."""
        if self.quitting:
            return
        group = self.runs.start_next()
        if not group:
            return
        live = self.query_one(LiveView)
        for item in group:
            prior = item.run.resume.history if item.run.resume else ()
            live.start(item.name, item.config.rounds * item.config.epochs, item.id, prior)
        self.train()
        self.update_queue_bar()

    def update_queue_bar(self) -> None:
        self.query_one("#queue", Static).update(self.runs.status_line(sweep=self.running_sweep()))
        self.refresh_bindings()  # ctrl+b shows while something runs

    def running_sweep(self):
        """The sweep screen, while its sweep runs (None otherwise)."""
        screen = self.get_screen("sweeps") if self.is_screen_installed("sweeps") else None
        return screen if screen is not None and screen.busy else None

    # Actions of the main screen's form and queue: elsewhere (the sweep screen, a dialog) they would act unseen
    MAIN_SCREEN_ACTIONS = {"run", "run_table2", "show_form", "show_tab", "filter", "clear_queue", "export", "cancel"}

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in self.MAIN_SCREEN_ACTIONS and len(self.screen_stack) > 1:
            return False  # neither shown in the footer nor run
        if action == "cancel" and not self.runs.live():
            return False  # nothing to cancel: its place in a full footer goes to keys that do something
        return True

    @work(thread=True, group="training", exit_on_error=False)
    def train(self) -> None:
        train_queue_group(self.runs, self.digits, self.engine, self.runs_root, self.post_message)

    def on_run_progress(self, message: RunProgress) -> None:
        self.query_one(LiveView).add(message.records, message.item_id)

    def on_run_finished(self, message: RunFinished) -> None:
        live = self.query_one(LiveView)
        summary: RunSummary = message.summary
        self.query_one(ResultsTable).put(summary)
        if message.superseded:
            self.query_one(ResultsTable).drop([message.superseded])
        line = score_line(summary)
        live.finish(summary.status, line + (f" · {markup(summary.reason)}" if summary.reason else ""), message.item_id)
        for text, options in finished_notices(message, line):
            self.notify(text, **options)
        group_over = self.runs.finished(message.item_id)
        if self.quitting and group_over:
            self.exit()
            return
        if group_over:
            if self.runs.waiting:
                live.keep_ended()  # the queue goes on: what just ended stays in view beside what starts
            self.start_next()
        self.update_queue_bar()

    # ------------------------------------------------------------------ actions

    def action_run(self) -> None:
        after_typing(self.focused, self.queue_form)  # the form as typed, every character before ctrl+r in it

    def queue_form(self) -> None:
        form = self.query_one(ConfigForm)
        run, why = form.next_run()
        if run is None:
            self.notify(markup(why), title="Cannot run", severity="error", timeout=8)
            return
        form.queued()
        self.enqueue(run)
        self.notify(f"queued {markup(run.name)}")
        if self.has_class("-narrow"):
            self.action_show_tab("live")

    def action_run_table2(self) -> None:
        missing = [name for name in TABLE_II if name not in self.presets]
        if missing:
            self.notify(f"missing presets: {', '.join(missing)}", severity="error")
            return
        for name in TABLE_II:  # queued as one: they start together, as `digit-workbench table` trains them
            self.enqueue(NamedRun.of(self.presets[name].config, self.presets[name]), start=False)
        self.start_next()
        self.update_queue_bar()
        self.notify("queued the eight rows of Table II")

    def action_cancel(self) -> None:
        """Cancels the run that trains; when several train together, asks which (or all)."""
        live = self.runs.live()
        if not live:
            self.notify("nothing is running")
            return
        if len(live) == 1:
            self.cancel_item(live[0])
            return

        def chosen(key: str | None) -> None:
            if key == "all":
                for item in self.runs.live():
                    self.cancel_item(item)
            elif key is not None:
                item = next((i for i in self.runs.live() if str(i.id) == key), None)
                if item is not None:
                    self.cancel_item(item)

        self.push_screen(Choose("Cancel which run? The others train on.",
                                [(str(i.id), cell(i.name)) for i in live] + [("all", "all of them")]), chosen)

    def cancel_item(self, item: QueueItem) -> None:
        self.runs.cancel(item)
        self.query_one(LiveView).finish("cancelled", "", item.id)
        self.update_queue_bar()
        self.notify(f"cancelling {markup(item.name)}…")

    def action_clear_queue(self) -> None:
        count = self.runs.clear()
        self.update_queue_bar()
        self.notify(f"cleared {count} queued run{'s' if count != 1 else ''}")

    def action_close_help(self) -> None:
        """Escape closes the key panel, as it closes every other panel."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()

    def action_show_tab(self, tab: str) -> None:
        self.set_class(False, "-form-view")
        tabs = self.query_one(TabbedContent)
        if self.focused is not None and tabs in self.focused.ancestors and tab != tabs.active:
            self.set_focus(None)  # focus left inside the hidden pane would bring that pane back
        tabs.active = tab
        self.query_one({"results": ResultsTable, "live": LiveView}[tab]).focus()

    def action_show_form(self) -> None:
        self.set_class(True, "-form-view")
        self.query_one("#preset").focus()

    def action_filter(self) -> None:
        self.action_show_tab("results")
        self.query_one("#results-filter", Input).focus()

    def action_sweeps(self) -> None:
        if isinstance(self.screen, SweepScreen):
            return
        if not self.is_screen_installed("sweeps"):  # installed: leaving it keeps its spec and a running sweep
            self.install_screen(SweepScreen(sorted(self.sweep_specs.glob("*.toml")) if self.sweep_specs else spec_paths()), "sweeps")
        self.push_screen("sweeps")

    # ------------------------------------------------------------------ the results table's runs (tui/notebook.py)

    def on_data_table_row_selected(self, event) -> None:
        """Enter on a run: its details."""
        if isinstance(event.data_table, ResultsTable) and event.row_key.value in event.data_table.summaries:
            self.notebook.details(event.data_table.summaries[event.row_key.value])

    def action_runs(self, what: str) -> None:
        """The results table's keys and the palette: what to do with its runs (compare, trash, …)."""
        getattr(self.notebook, what)()

    def action_export(self) -> None:
        self.notebook.export()

    def action_load_preset(self, name: str) -> None:
        self.query_one(ConfigForm).load_preset(name)
        self.notify(f"loaded preset {name}")

    async def action_quit(self) -> None:
        sweep = self.running_sweep()
        if not self.runs.running and sweep is None:
            self.exit()
            return
        if not self.runs.running:
            self.push_screen(Confirm(f"The sweep {markup(sweep.study)} is running. Stop its workers and quit? "
                                     "Running it again continues the study."),
                             lambda stop: self.exit() if stop else None)
            return

        def answer(stop: bool | None) -> None:
            if stop and self.runs.running:
                self.quitting = True
                self.runs.clear()
                self.runs.cancel_all()
                self.set_timer(2.0, self.exit)  # the runs stop within a second; never hang on them
            elif stop:
                self.exit()

        names = ", ".join(markup(item.name) for item in self.runs.running[:3]) + ("…" if len(self.runs.running) > 3 else "")
        one = len(self.runs.running) == 1
        self.push_screen(Confirm(f"{names} {'is' if one else 'are'} running. Stop {'it' if one else 'them'} "
                                 "and quit?"), answer)

    # The command palette: (title, help, action), then a command per preset.
    PALETTE = [("Run", "Queue the form's configuration (ctrl+r)", "run"),
               ("Run all of Table II", "Queue the eight rows of Table II (ctrl+t)", "run_table2"),
               ("Cancel run", "Stop the current run; it is kept as cancelled (ctrl+b)", "cancel"),
               ("Clear queue", "Drop the runs waiting in the queue (ctrl+l)", "clear_queue"),
               ("Sweeps", "Run the paper's grid searches (f4)", "sweeps"),
               ("Compare selected", "The runs marked with space in the results table, side by side (c)",
                "runs('compare')"),
               ("Compare the Table II rows", "The latest finished run of each Table II row, side by side",
                "runs('compare_table2')"),
               ("Export runs to CSV", "Write the results table to CSV (ctrl+o)", "export"),
               ("Browse the trash", "Bring back any run moved there (T in the results)", "runs('browse_trash')")]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, text, action in self.PALETTE:
            yield SystemCommand(title, text, partial(self.run_action, action))
        for name, preset in self.presets.items():
            yield SystemCommand(f"Load preset: {name}", preset.title, lambda n=name: self.action_load_preset(n))


def run_app() -> int:
    """The app's exit status: 0 after a quit, non-zero when it ended on an error (Textual prints it)."""
    app = WorkbenchApp()
    app.run()
    return app.return_code or 0
