"""`digit-workbench sweep`: start workers, watch the trials live, export them, measure the chosen configs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from .config import ConfigError
from .runs import runs_dir
from .report import mean_std_label, pct
from .sweep import (SweepSpec, Trial, all_trials, default_storage, export_trials, final_runs, find_spec, load_spec,
                    open_storage, params_text, record_spec, recorded_spec, stage_summaries, start_workers,
                    trials_csv_path)


class SweepUsage(Exception):
    pass


def trials_view(spec: SweepSpec, trials: list[Trial], study: str, elapsed: float, last: int = 8) -> Group:
    stages = Table(title=f"sweep {study}: {spec.title}", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("stage", "trials", "best (validation %)", "test % there", "params"):
        stages.add_column(col)
    for s in stage_summaries(spec, trials):
        best = s.best
        stages.add_row(f"{s.index + 1}. {s.stage.name}",
                       f"{s.done}/{s.stage.size()}" + (f" (+{s.running} running)" if s.running else ""),
                       mean_std_label(best.val_mean, best.val_std) if best else "—",
                       mean_std_label(best.test_mean, best.test_std) if best else "—",
                       params_text(best.params) if best else "")
    recent = Table(title="latest trials", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("stage", "#", "state", "params", "val %", "test %", "s", "worker"):
        recent.add_column(col)
    for t in sorted(trials, key=lambda t: (t.stage, t.number))[-last:]:
        recent.add_row(str(t.stage + 1), str(t.number), t.state, params_text(t.params), pct(t.val_mean),
                       pct(t.test_mean), "" if t.seconds is None else f"{t.seconds:.1f}", t.worker)
    return Group(stages, recent, f"[dim]{elapsed:.0f} s elapsed · trials are chosen on validation pairs from "
                                 f"training digits; test accuracy is shown, never used to choose[/]\n")


def run_sweep_command(args: argparse.Namespace) -> int:
    console = Console()
    if args.workers < 1:
        raise _usage("--workers: at least 1")
    try:
        if args.show:
            study = args.show
            storage_url = args.storage or default_storage(study)
            if "://" not in storage_url and not Path(storage_url).exists():
                raise _usage(f"--show: no sweep storage at {storage_url}")
            storage = open_storage(storage_url)
            spec = recorded_spec(storage, study)
            console.print(trials_view(spec, all_trials(spec, storage, study), study, 0.0, last=10_000))
            return 0
        if not args.spec:
            raise _usage("sweep: name a spec (see presets/sweeps/) or use --show STUDY")
        spec = load_spec(find_spec(args.spec))
    except ConfigError as exc:
        raise _usage(str(exc) if exc.source else f"--{exc}") from None
    study = args.study or spec.name
    storage_url = args.storage or default_storage(study)
    try:
        storage = open_storage(storage_url)
        record_spec(storage, study, spec)
    except Exception as exc:  # a database that cannot be reached, a journal that cannot be written
        raise _usage(f"--storage: cannot open {storage_url}: {exc}") from None

    started = time.monotonic()
    procs = start_workers(spec, storage_url, study, args.workers)
    interrupted = False
    try:
        with Live(console=console, refresh_per_second=2) as live:
            while any(p.is_alive() for p in procs):
                live.update(trials_view(spec, all_trials(spec, storage, study), study, time.monotonic() - started))
                time.sleep(1.0)
            live.update(trials_view(spec, all_trials(spec, storage, study), study, time.monotonic() - started))
    except KeyboardInterrupt:
        interrupted = True
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(5)
        console.print("[yellow]stopped; run the same command again to continue the study[/]")
    out = args.out or trials_csv_path(study, storage_url)
    export_trials(spec, storage, study, out)
    console.print(f"trials written to {out}")
    if interrupted:
        return 130
    failed_workers = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed_workers:
        console.print(f"[red]{len(failed_workers)} worker(s) ended with an error (exit {failed_workers})[/]")
        return 1
    if not args.no_final:
        measure_final(spec, storage, study, args, console)
    return 0


def measure_final(spec: SweepSpec, storage, study: str, args, console: Console) -> None:
    """The config chosen on validation after each stage, measured on the test pairs over the protocol's rounds."""
    from .cli import load_digits
    from .engine import run_configs
    from .runs import save_run

    chosen = final_runs(spec, storage, study)
    if not chosen:
        return
    source = load_digits(args)
    results = run_configs([config for _, config, _ in chosen], source)
    table = Table(title=f"{study}: chosen on validation, measured on test ({spec.final_rounds} rounds)",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("after stage", "config", "validation %", "test %"):
        table.add_column(col)
    searched: dict = {}
    for stage, (label, config, val), result in zip(spec.stages, chosen, results):
        save_run(result, label, None, spec.paper, runs_dir())
        searched.update({p: getattr(config, p) for p in [*stage.grid, *stage.ranges]})
        table.add_row(label.split(" after ", 1)[1], params_text(searched), pct(val), mean_std_label(*result.mean_std()))
    if spec.paper:
        table.caption = f"paper: {spec.paper.score * 100:.2f} % ({spec.paper.note})"
    console.print(table)


def _usage(message: str) -> Exception:
    from .cli import UsageError

    return UsageError(message)
