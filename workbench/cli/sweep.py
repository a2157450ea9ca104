"""`digit-workbench sweep`: start workers, watch the trials live, export them, measure the chosen configs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from workbench.cli.report import console as commands_console
from workbench.cli.report import text
from workbench.cli.usage import RUNS_DIR_HELP, UsageError, add_data_flags, load_digits
from workbench.format import (FINAL_COLUMNS, STAGE_COLUMNS, TRIAL_COLUMNS, final_rows, pct, plain, stage_cells,
                              trial_cells)
from workbench.paper.config import ConfigError
from workbench.paper.sources import source_kind
from workbench.procs import sigterm_as_interrupt
from workbench.records.folder import runs_dir
from workbench.sweep.spec import SweepSpec, find_spec, load_spec
from workbench.sweep.storage import (Trial, all_trials, check_study_name, default_storage, open_storage, recorded_spec,
                                     stage_summaries, storage_exists)
from workbench.sweep.supervisor import FinalRun, SweepNotStarted, SweepRun, check_workers, sweep_refusal


def trials_view(spec: SweepSpec, trials: list[Trial], study: str, elapsed: float, last: int = 8) -> Group:
    stages = Table(title=text(f"sweep {study}: {spec.title}"), title_justify="left", box=box.SIMPLE_HEAD)
    for col in STAGE_COLUMNS:
        stages.add_column(col)
    for s in stage_summaries(spec, trials):
        stages.add_row(*(text(c) for c in stage_cells(s)))
    recent = Table(title="latest trials", title_justify="left", box=box.SIMPLE_HEAD)
    for col in TRIAL_COLUMNS:
        recent.add_column(col)
    for t in sorted(trials, key=lambda t: (t.stage, t.number))[-last:]:
        recent.add_row(*(text(c) for c in trial_cells(t)))
    return Group(stages, recent, f"[dim]{elapsed:.0f} s elapsed · trials are chosen on validation pairs from "
                                 f"training digits; test accuracy is shown, never used to choose[/]\n")


def finals_table(spec: SweepSpec, study: str, finals: list[FinalRun]) -> Table:
    table = Table(title=text(f"{study}: chosen on validation, measured on test ({spec.final_rounds} rounds)"),
                  title_justify="left", box=box.SIMPLE_HEAD)
    rows = final_rows(spec, finals)
    columns = FINAL_COLUMNS if any(row[-1] for row in rows) else FINAL_COLUMNS[:-1]
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(text(c) for c in row[:len(columns)]))
    if spec.paper:
        table.caption = text(f"paper: {pct(spec.paper.score, 2)} % ({spec.paper.note})")
    return table


def show_study(args: argparse.Namespace, console: Console) -> int:
    try:
        study = check_study_name(args.show)
    except ConfigError as exc:
        raise UsageError(f"--show: {exc.message}") from None
    storage_url = args.storage or default_storage(study)
    if not storage_exists(storage_url):
        raise UsageError(f"--show: no sweep storage at {storage_url}")
    try:
        storage = open_storage(storage_url)
        spec = recorded_spec(storage, study)
    except ConfigError as exc:
        raise UsageError(f"--show: {exc.message}") from None
    except Exception as exc:  # an unknown database kind, one that cannot be reached, a damaged journal
        flag_name = "--storage" if args.storage else "--show"
        raise UsageError(f"{flag_name}: cannot read {storage_url}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    console.print(trials_view(spec, all_trials(spec, storage, study), study, 0.0, last=10_000))
    return 0


def run_sweep_command(args: argparse.Namespace) -> int:
    console = commands_console()
    try:
        check_workers(args.workers)
    except ValueError as exc:
        raise UsageError(f"--workers: {exc}") from None
    try:
        if args.show is not None:  # a look at a study: no torch, no digits
            return show_study(args, console)

        if not args.spec:
            raise UsageError("sweep: name a spec (see presets/sweeps/) or use --show STUDY")
        spec = load_spec(find_spec(args.spec))
    except ConfigError as exc:
        raise UsageError(str(exc) if exc.source else f"--{exc}") from None
    try:
        study = check_study_name(args.study if args.study is not None else spec.name)
    except ConfigError as exc:
        raise UsageError(f"--study: {exc.message}") from None
    source = load_digits(args.data, args.data_dir)  # checked before any worker starts; the workers load the same digits
    why = sweep_refusal(spec, source)  # before the study exists: a refused sweep leaves none
    if why:
        raise UsageError(f"--data: {why}")
    sweep = SweepRun(spec, study, args.storage, source_kind(args.data, args.data_dir), args.data_dir)
    try:
        sweep.open()
    except Exception as exc:  # a database that cannot be reached, a journal that cannot be written
        raise UsageError(f"--storage: cannot open {sweep.storage_url}: {exc}") from None

    with sigterm_as_interrupt():  # SIGTERM stops the workers and keeps the trials, as Ctrl-C does
        return supervise(sweep, args, source, console)


def supervise(sweep: SweepRun, args: argparse.Namespace, source, console: Console) -> int:
    """Starts the workers, watches them, exports the trials and measures the chosen configs; an interrupt stops
    the workers (their trial in flight is queued again) and still writes the trials CSV."""
    spec = sweep.spec
    try:
        with Live(console=console, refresh_per_second=2) as live:
            searched = sweep.search(args.workers, lambda trials: live.update(
                trials_view(spec, trials, sweep.study, sweep.elapsed)), out=args.out)
    except SweepNotStarted as exc:
        print(f"digit-workbench: {plain(exc)}", file=sys.stderr)
        return 1
    if not searched.finished:
        console.print(text(f"stopped; {searched.trials_line}; run the same command again to continue the study",
                           "yellow"))
        return 130
    console.print(text(searched.trials_line, "" if searched.written else "red"))
    if searched.failure:
        console.print(text(searched.failure, "red"))
        return 1
    if args.no_final:
        return 0 if searched.written else 1

    finals = sweep.measure_final(source, runs_dir())
    if finals:
        console.print(finals_table(spec, sweep.study, finals))
    if any(f.measured_before for f in finals):
        console.print(text("the configs chosen are the ones measured before: their runs are shown, nothing was "
                           "trained again", "dim"))
    for final in finals:
        if final.unsaved:
            print(f"digit-workbench: {plain(final.unsaved)}", file=sys.stderr)
    return 1 if any(final.unsaved for final in finals) or not searched.written else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.runs_dir is not None:  # read by the storage, the final runs and the worker processes alike
        os.environ["DIGIT_WORKBENCH_RUNS"] = str(args.runs_dir)
    return run_sweep_command(args)


def add_sweep_parser(sub) -> None:
    sweep = sub.add_parser("sweep", help="run a grid search from presets/sweeps (Tables III and IV)")
    sweep.add_argument("spec", nargs="?", help="a spec name (presets/sweeps/NAME.toml) or a .toml file")
    sweep.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    sweep.add_argument("--storage", default=None,
                       help="a database URL (postgresql://...) that workers on several machines share; "
                            "default: a journal file runs/sweeps/STUDY.journal")
    sweep.add_argument("--study", default=None, help="the study's name (default: the spec's name)")
    sweep.add_argument("--show", metavar="STUDY", default=None, help="print a study's trials and best configs")
    sweep.add_argument("--out", type=Path, default=None, help="CSV of all trials (default: runs/sweeps/STUDY-trials.csv)")
    sweep.add_argument("--no-final", action="store_true",
                       help="skip measuring the chosen configs on the test pairs afterwards")
    sweep.add_argument("--runs-dir", type=Path, default=None,
                       help=RUNS_DIR_HELP + "; the journal, the trials CSV and the final runs go there")
    add_data_flags(sweep)
