"""The sweep screen: pick a spec, start and cancel its workers, watch the trials and the best score evolve; at
the end the config chosen after each stage is measured on the test pairs and joins the results table."""

from __future__ import annotations

import threading
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static
from textual_plotext import PlotextPlot

from workbench.analysis.importance import Importance, Row, importances, parallel, rows_of
from workbench.format import (STAGE_COLUMNS, TRIAL_COLUMNS, percent, plain, score_line, setting, stage_cells,
                              sweep_progress, trial_cells)
from workbench.paper.config import FIELDS, ConfigError
from workbench.sweep import (SweepRun, SweepSpec, Trial, all_trials, default_storage, export_trials, load_spec,
                             open_storage, stage_summaries, storage_exists, sweeps_dir, trials_csv_path)
from workbench.sweep.supervisor import SweepNotStarted, check_workers, sweep_refusal
from workbench.tui.live import fit_title
from workbench.tui.messages import RunsFound, SweepEnded, SweepUpdate
from workbench.tui.settings_views import draw_importance, draw_parallel
from workbench.tui.text import cell, markup
from workbench.tui.text_input import TextInput

POLL_S = 1.0


def spec_text(spec: SweepSpec) -> str:
    """The spec as a reader checks it before starting: each stage's grid (or range) and its trial count."""
    lines = [f"[b]{markup(spec.title)}[/b] · base: {spec.base.subnet}, {spec.base.rounds} rounds per trial · "
             f"chosen on {spec.validation_pairs} validation pairs, then {spec.final_rounds} rounds on the test pairs"]
    for i, stage in enumerate(spec.stages, 1):
        if stage.is_grid:
            axes = " × ".join(f"{FIELDS[k].label} {{{', '.join(setting(v) for v in values)}}}"
                              for k, values in stage.grid.items())
            lines.append(f"  {i}. {markup(stage.name)}: {axes} = {stage.size()} trials")
        else:
            axes = ", ".join(f"{FIELDS[k].label} in [{setting(lo)}, {setting(hi)}]" for k, (lo, hi) in stage.ranges.items())
            lines.append(f"  {i}. {markup(stage.name)}: {axes}, {stage.trials} trials (model-based search)")
    return "\n".join(lines)


def spec_label(path: Path) -> str:
    """A shipped spec by its name; one of the user's own with its folder too (it may share a shipped name)."""
    return path.stem if path.parent == sweeps_dir() else f"{path.stem} ({path.parent.name}/)"


def final_line(final) -> str:
    """A chosen config's final measurement as the screen's status line says it: its score, or why it has none."""
    stage = final.label.split(" after ", 1)[1]
    if final.summary.status != "done":
        what = final.summary.status + (f": {final.summary.reason}" if final.summary.reason else "")
    else:
        what = score_line(final.summary)
    earlier = " (measured before)" if getattr(final, "measured_before", False) else ""
    return f"{stage}: {what}{earlier}" + (f" ({final.unsaved})" if final.unsaved else "")


def hold_flat_scale(plt, scores: list[float]) -> None:
    """Scores all alike (a best-so-far that has not moved) get a point either side: plotext would stretch a flat
    line's scale by half its value, to accuracies of 48 to 144 %."""
    if scores and max(scores) - min(scores) < 0.1:
        plt.ylim(min(scores) - 1.0, max(scores) + 1.0)


class SweepScreen(Screen):
    """One per app: leaving it (escape) and coming back (f4) finds the chosen spec, and a running sweep, as left."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("ctrl+e", "export", "Export trials"),
                Binding("ctrl+b", "cancel", "Cancel sweep", priority=True),
                Binding("i", "settings_matter", "Importance",
                        tooltip="Which settings matter in the latest stage: importance and parallel coordinates")]

    def __init__(self, specs: list[Path]) -> None:
        super().__init__()
        self.specs = specs
        self.spec: SweepSpec | None = None
        self.study = ""
        self.storage_url = ""
        self.sweep: SweepRun | None = None
        self.stop = threading.Event()
        self.busy = False  # from start until the chosen configs are measured
        self.progress = ""  # where the sweep stands, for the main screen's bottom line
        self.matter = False  # the two parameter plots show importance and parallel coordinates instead
        self.weighed: tuple[tuple, Importance] | None = None  # the last importance and the trials it weighed
        self.trials: list[Trial] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="sweep", can_focus=False):  # below ~30 rows the trials table is reached by the wheel and by Tab
            with Horizontal(classes="sweep-row"):
                yield Label("Spec", classes="sweep-label")
                yield Select([(spec_label(p), str(p)) for p in self.specs], prompt="choose a sweep spec…", id="sweep-spec",
                             compact=True)
            with Horizontal(classes="sweep-row"):
                yield Label("Workers", classes="sweep-label")
                yield TextInput("1", id="sweep-workers", compact=True)
                yield Label("Storage", classes="sweep-label")
                yield TextInput(placeholder="journal file under runs/sweeps (or postgresql://…)", id="sweep-storage",
                                compact=True)
            with Horizontal(classes="sweep-row"):
                yield Button("Start", id="sweep-start", variant="primary", compact=True)
                yield Button("Cancel", id="sweep-cancel", variant="error", compact=True)
                yield Button("Export trials", id="sweep-export", compact=True)
            yield Static("", id="sweep-status")  # under the buttons, whole: beside them it was cut at 80 columns
            yield Static("", id="sweep-title")
            yield DataTable(id="sweep-stages", cursor_type="none")
            with Horizontal(id="sweep-plots"):
                yield PlotextPlot(id="sweep-param-a")
                yield PlotextPlot(id="sweep-param-b")
                yield PlotextPlot(id="sweep-best")
            yield DataTable(id="sweep-trials", zebra_stripes=True, cursor_type="row")
        yield Footer(show_command_palette=False)  # the palette is a key in the list: its own item sat over them

    SHORT = 32  # rows: below, the three plots shrink so that the trials table starts in view

    def on_resize(self, event) -> None:
        self.set_class(event.size.height < self.SHORT, "-short")

    def on_mount(self) -> None:
        self.query_one("#sweep-stages", DataTable).add_columns(*STAGE_COLUMNS)
        self.query_one("#sweep-trials", DataTable).add_columns(*TRIAL_COLUMNS)
        self.query_one("#sweep-spec", Select).focus()  # the keyboard starts where the user starts

    def on_select_changed(self, event: Select.Changed) -> None:
        if not isinstance(event.value, str):
            return
        try:
            self.spec = load_spec(Path(event.value))
        except ConfigError as exc:
            self.spec = None
            self.notify(markup(exc), title="Bad sweep spec", severity="error", timeout=10)
            return
        self.study = self.spec.name
        self.query_one("#sweep-title", Static).update(spec_text(self.spec))
        self.show(self.load_existing(), running=False)

    def load_existing(self) -> list[Trial]:
        storage_url = self.storage_choice()
        if not storage_exists(storage_url):
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
        if self.busy:
            self.notify("this sweep is already running")
            return
        raw = self.query_one("#sweep-workers", Input).value.strip()
        try:
            check_workers(int(raw) if raw.isascii() and raw.isdigit() else 0)
        except ValueError as exc:
            self.notify(markup(f"Workers: {str(exc).rsplit(', got', 1)[0]}, got {raw[:20]!r}"), title="Cannot start",
                        severity="error")
            return
        source = self.app.digits.source  # loaded at start: the workers load the same digits
        why = sweep_refusal(self.spec, source) if source is not None else ""
        if why:
            self.notify(markup(why), title="Cannot start", severity="error")
            return
        self.storage_url = self.storage_choice()
        self.stop.clear()
        self.busy = True
        self.sweep = SweepRun(self.spec, self.study, self.storage_url)  # the app's digits: full MNIST if present
        self.run_sweep(self.sweep, int(raw))

    @work(thread=True, group="sweep", exclusive=True, exit_on_error=False)
    def run_sweep(self, sweep: SweepRun, workers: int) -> None:
        """Starts the worker processes, watches the storage, then measures the chosen configs; never touches a
        widget."""
        try:
            self.watch_sweep(sweep, workers)
        finally:
            self.busy = False
            self.post_message(SweepEnded())  # the main screen's bottom line stops saying a sweep runs

    def watch_sweep(self, sweep: SweepRun, workers: int) -> None:
        def running(trials: list[Trial]) -> None:
            self.post_message(SweepUpdate(trials, True, f"running {workers} worker(s) · {sweep.elapsed:.0f} s"))

        try:
            searched = sweep.search(workers, running, self.stop, POLL_S)
        except SweepNotStarted as exc:
            self.post_message(SweepUpdate([], False, str(exc)))
            return
        if not searched.finished:
            self.post_message(SweepUpdate(sweep.trials(), False, "cancelled: start again to continue the study; "
                                          + searched.trials_line))
            return
        if searched.failure:
            self.post_message(SweepUpdate(sweep.trials(), False, searched.failure))
            return
        searched = f"searched in {sweep.elapsed:.0f} s"
        self.post_message(SweepUpdate(sweep.trials(), True, f"{searched}; measuring the chosen configs on test…"))
        finals = sweep.measure_final(self.app.digits(), self.app.runs_root, cancel=self.stop)
        self.app.post_message(RunsFound([f.summary for f in finals], []))  # into the results table at once
        done = "; ".join(final_line(f) for f in finals)
        self.post_message(SweepUpdate(sweep.trials(), False, f"{searched}; chosen configs on test: {done}"))

    def on_sweep_ended(self, message: SweepEnded) -> None:
        self.app.update_queue_bar()

    def on_sweep_update(self, message: SweepUpdate) -> None:
        self.show(message.trials, message.running, message.note)
        self.app.update_queue_bar()
        if message.note and not message.running:
            self.notify(markup(message.note), title=f"Sweep {plain(self.study)}")

    def show(self, trials: list[Trial], running: bool, note: str = "") -> None:
        if self.spec is None:
            return
        stages = self.query_one("#sweep-stages", DataTable)
        stages.clear()
        summaries = stage_summaries(self.spec, trials)
        for s in summaries:
            stages.add_row(*(cell(c) for c in stage_cells(s, with_running=False)))
        self.progress = sweep_progress(summaries)  # the main screen's bottom line says it too
        table = self.query_one("#sweep-trials", DataTable)
        following = table.scroll_y >= table.max_scroll_y  # at the newest trials: stay there as rows come in
        table.clear()
        for t in sorted(trials, key=lambda t: (t.stage, t.number)):
            table.add_row(*(cell(c) for c in trial_cells(t)))
        if following:  # the trials in progress are the last rows; a user who scrolled up keeps their place
            table.call_after_refresh(table.scroll_end, animate=False, immediate=True)
        self.query_one("#sweep-status", Static).update(markup(note) or ("running" if running else ""))
        self.trials = trials
        self.draw_plots(trials)

    def draw_plots(self, trials: list[Trial]) -> None:
        """The latest stage with finished trials: validation score against each swept parameter (or, after `i`,
        which settings matter), and the best validation score so far over its trials."""
        finished = [t for t in trials if t.state == "complete" and t.val_mean is not None]
        plots = [self.query_one(f"#{i}", PlotextPlot) for i in ("sweep-param-a", "sweep-param-b", "sweep-best")]
        for plot in plots:
            plot.plt.clear_data()
            plot.plt.clear_figure()
        if not finished:
            for plot in plots:
                plot.display = True
                plot.refresh()
            return
        stage_index = max(t.stage for t in finished)
        stage = self.spec.stages[stage_index]
        mine = sorted((t for t in finished if t.stage == stage_index), key=lambda t: t.number)
        if self.matter:
            self.draw_matter(plots[0], plots[1], stage.name, mine)
        else:
            self.draw_params(plots[:2], stage, mine)
        self.draw_best(plots[2], stage.name, mine)

    def draw_params(self, plots: list[PlotextPlot], stage, mine: list[Trial]) -> None:
        """Validation score against each of the stage's first two parameters."""
        params = list(stage.grid or stage.ranges)
        for plot, param in zip(plots, params[:2] + [None] * (2 - len(params[:2]))):
            plt = plot.plt
            plot.display = param is not None  # a stage of one parameter: no empty box beside its plot
            if param is None:
                continue
            values = [float(t.params[param]) for t in mine if param in t.params]
            scores = [percent(t.val_mean) for t in mine if param in t.params]
            plt.scatter(values, scores, marker="dot", color=(40, 170, 90))
            hold_flat_scale(plt, scores)
            fit_title(plot, f"{plain(stage.name)}: validation % vs {FIELDS[param].label}")
            plt.xlabel(FIELDS[param].label)
            if stage.is_grid and len(set(values)) <= 8:
                plt.xticks(sorted(set(values)), [setting(v) for v in sorted(set(values))])
            plot.refresh()

    def draw_best(self, plot: PlotextPlot, stage: str, mine: list[Trial]) -> None:
        plt = plot.plt
        best, so_far = float("-inf"), []
        for t in mine:
            best = max(best, percent(t.val_mean))
            so_far.append(best)
        plt.plot(list(range(1, len(so_far) + 1)), so_far, marker="braille", color=(30, 150, 220))
        hold_flat_scale(plt, so_far)
        fit_title(plot, f"{plain(stage)}: best validation % so far")
        plt.xlabel("trial")
        plot.refresh()

    def action_settings_matter(self) -> None:
        self.matter = not self.matter
        self.draw_plots(self.trials)

    def draw_matter(self, left: PlotextPlot, right: PlotextPlot, stage: str, trials: list[Trial]) -> None:
        """The stage's finished trials as rows of their settings and validation score: importance on the left
        (worked out in a thread, once per set of trials), parallel coordinates on the right."""
        rows = rows_of([Row(f"trial {t.number}", t.params, percent(t.val_mean)) for t in trials])
        key = tuple((t.number, t.val_mean) for t in trials)
        left.display = right.display = True
        if self.weighed is None or self.weighed[0] != key:
            draw_importance(left, None, f"{plain(stage)}: weighing the settings…")
            self.weigh(key, rows)
        else:
            result = self.weighed[1]
            draw_importance(left, result, f"{plain(stage)}: " + (result.why_none or "which settings matter"))
        lines = parallel(rows, "validation %")
        draw_parallel(right, lines, f"{plain(stage)}: {len(trials)} trials, {lines.low:.1f} to {lines.high:.1f} %")

    @work(thread=True, exclusive=True, group="importance")
    def weigh(self, key: tuple, rows) -> None:
        result = importances(rows)
        self.app.call_from_thread(self.have_weighed, key, result)

    def have_weighed(self, key: tuple, result: Importance) -> None:
        self.weighed = (key, result)
        if self.matter:
            self.draw_plots(self.trials)

    def action_cancel(self) -> None:
        if not self.busy:
            self.notify("no sweep is running")
            return
        self.stop.set()
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
            self.notify(markup(f"cannot export: {exc}"), severity="error")
            return
        self.notify(markup(f"trials written to {out.resolve()}"), title="Exported")

    def on_unmount(self) -> None:
        self.stop.set()
