"""A sweep worker: works through the stages in order, one trial at a time, beside whatever other workers share
the storage; and the worker processes of one machine."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .spec import Stage, SweepSpec, load_spec
from ..procs import owner_gone, owner_tag
from .storage import MAX_RETRIES, Trial, is_database, open_storage, stage_base, stage_study_name, trials_csv_path


UNTAGGED_GRACE_S = 60.0  # a trial names its worker within milliseconds of its start; one untagged longer is an orphan


def trial_owner_gone(t) -> bool:
    """Whether a running trial's worker has died: its host:pid is gone, or it never got to name itself (ended
    between the trial's start and its first write) and the trial started long ago."""
    import datetime

    tag = str(t.user_attrs.get("worker", ""))
    if tag:
        return owner_gone(tag)
    started = t.datetime_start
    return started is not None and (datetime.datetime.now() - started).total_seconds() > UNTAGGED_GRACE_S


def reap_dead_trials(study, stage: Stage) -> int:
    """Journal storage has no heartbeat: a running trial whose worker on this machine is gone is failed and its
    point enqueued again (at most MAX_RETRIES times). A trial that died before it drew all its parameters has no
    point to retry: a grid's point stays open (open_points), a range search draws another. A database storage
    does this through Optuna's heartbeat."""
    from optuna.trial import TrialState

    names = set(stage.grid or stage.ranges)
    reaped = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not trial_owner_gone(t):
            continue
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        retries = int(t.user_attrs.get("retry", 0))
        if retries < MAX_RETRIES and set(t.params) == names:
            study.enqueue_trial(dict(t.params), user_attrs={"retry": retries + 1, "retry_of": t.number})
        reaped += 1
    return reaped


def point_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


def open_points(stage: Stage, trials) -> set[tuple]:
    """Grid points that no trial has started or is queued to start: a failed point comes back only through its
    enqueued retry."""
    import itertools

    from optuna.trial import TrialState

    names = list(stage.grid)
    points = {point_key(dict(zip(names, combo))) for combo in itertools.product(*stage.grid.values())}
    started = {point_key(t.params) for t in trials if t.state != TrialState.WAITING and t.params}
    queued = {point_key(t.system_attrs.get("fixed_params") or {}) for t in trials if t.state == TrialState.WAITING}
    return points - started - queued


def queue_open_point(study, stage: Stage) -> None:
    """Before each grid trial, its point is queued by name: every trial then draws a whole point, so a point whose
    trial ended before it drew its parameters is tried again (the grid sampler counts that point as visited)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return
    points = sorted(open_points(stage, trials))
    if points:
        study.enqueue_trial(dict(points[os.getpid() % len(points)]))  # workers start from different points


def run_worker(spec: SweepSpec, storage_url: str, study: str, source=None, cancel=None,
               on_trial: Callable[[Trial], None] | None = None, poll_s: float = 0.5) -> None:
    """Work through every stage in order, with whatever other workers share the storage."""
    import optuna

    from ..data import load_source

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = source or load_source("auto")
    storage = open_storage(storage_url)
    for index, stage in enumerate(spec.stages):
        if cancel is not None and cancel.is_set():
            return
        s = stage_study(spec, storage, study, index)
        objective = Objective(spec, stage, s, stage_base(spec, storage, study, index), source, cancel)
        callbacks = [trial_reporter(index, on_trial, cancel)]
        while not (cancel is not None and cancel.is_set()):
            if not is_database(storage_url):
                reap_dead_trials(s, stage)
            left = stage_left(stage, s.get_trials(deepcopy=False))
            if left == "open":
                if stage.is_grid:
                    queue_open_point(s, stage)
                s.optimize(objective, n_trials=1, catch=(RuntimeError,), callbacks=callbacks)
            elif left == "running":
                time.sleep(poll_s)  # other workers are finishing this stage's last points
            else:
                break


def stage_study(spec: SweepSpec, storage, study: str, index: int):
    """The Optuna study of one stage: a grid sampler over its grid, or TPE over its ranges."""
    import optuna

    stage = spec.stages[index]
    if stage.is_grid:
        sampler = optuna.samplers.GridSampler(stage.grid, seed=spec.base.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=spec.base.seed + os.getpid(), n_startup_trials=min(10, stage.trials))
    return optuna.create_study(study_name=stage_study_name(study, index, stage), storage=storage,
                               direction="maximize", sampler=sampler, load_if_exists=True)


def stage_left(stage: Stage, trials) -> str:
    """'open' while a point waits to be tried (or a retry is enqueued), 'running' while only other workers'
    trials are left, 'done' after."""
    from optuna.trial import TrialState

    waiting = [t for t in trials if t.state == TrialState.WAITING]
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.RUNNING)
               and t.user_attrs.get("duplicate_of") is None]
    remaining = len(open_points(stage, trials)) if stage.is_grid else stage.trials - len(counted)
    if waiting or remaining > 0:
        return "open"
    return "running" if any(t.state == TrialState.RUNNING for t in trials) else "done"


class Objective:
    """One trial: the stage's base with the trial's parameters, trained alone, scored on validation pairs."""

    def __init__(self, spec: SweepSpec, stage: Stage, study, base, source, cancel) -> None:
        self.spec, self.stage, self.study, self.base, self.source, self.cancel = spec, stage, study, base, source, cancel

    def params(self, trial) -> dict[str, Any]:
        if self.stage.is_grid:
            return {p: trial.suggest_categorical(p, values) for p, values in self.stage.grid.items()}
        return {p: trial.suggest_float(p, lo, hi) for p, (lo, hi) in self.stage.ranges.items()}

    def give_way_to_an_earlier_twin(self, trial, params: dict[str, Any]) -> None:
        import optuna
        from optuna.trial import TrialState

        for other in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if other.number == trial.number or other.params != params:
                continue
            # two workers drew one grid point: a finished twin owns it, else the earlier one (a trial may draw its
            # parameters after a later one has finished with them: under load the numbers alone let both count)
            if other.state == TrialState.COMPLETE or other.number < trial.number:
                trial.set_user_attr("duplicate_of", other.number)
                raise optuna.TrialPruned()

    def __call__(self, trial) -> float:
        from ..engine import run_configs

        trial.set_user_attr("worker", owner_tag())
        params = self.params(trial)
        self.give_way_to_an_earlier_twin(trial, params)
        started = time.perf_counter()
        result = run_configs([self.base.replace(**params)], self.source, cancel=self.cancel,
                             validation=self.spec.validation_pairs)[0]
        if result.status != "done":
            raise RuntimeError(result.reason or result.status)
        # again: the twin may have drawn the point just before this trial, yet written it just after it looked
        self.give_way_to_an_earlier_twin(trial, params)
        val_mean, val_std = result.val_mean_std()
        test_mean, test_std = result.mean_std()
        for key, value in (("val_mean", val_mean), ("val_std", val_std), ("test_mean", test_mean),
                           ("test_std", test_std), ("seconds", time.perf_counter() - started)):
            trial.set_user_attr(key, value)
        return val_mean


def trial_reporter(index: int, on_trial: Callable[[Trial], None] | None, cancel):
    """An Optuna callback: tells on_trial of each finished trial, and stops the study once cancelled."""
    def report(study_, frozen) -> None:
        if on_trial is not None:
            on_trial(Trial(index, frozen.number, frozen.state.name.lower(), dict(frozen.params),
                           frozen.user_attrs.get("val_mean"), frozen.user_attrs.get("val_std"),
                           frozen.user_attrs.get("test_mean"), frozen.user_attrs.get("test_std"),
                           frozen.user_attrs.get("seconds"), str(frozen.user_attrs.get("worker", ""))))
        if cancel is not None and cancel.is_set():
            study_.stop()

    return report


def max_workers() -> int:
    """Worker processes one machine may start: one per core (each holds its own torch, several hundred MB)."""
    return os.cpu_count() or 1


def workers_log(study: str, storage_url: str) -> Path:
    """Where a sweep's workers write what made one of them fail: beside the trials CSV."""
    return trials_csv_path(study, storage_url).with_name(f"{study}-workers.log")


def _worker_main(parent: int, spec_path: str, storage_url: str, study: str, data: str, data_dir: str | None) -> None:
    import signal
    import traceback

    from ..data import load_source
    from ..procs import exit_with_parent, sigterm_between_writes

    exit_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us on Ctrl-C
    sigterm_between_writes()
    log = workers_log(study, storage_url)
    try:  # what a worker says (Optuna's warnings, a traceback) goes to the sweep's log, never over the screen
        log.parent.mkdir(parents=True, exist_ok=True)
        os.dup2(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), 2)
    except OSError:
        pass  # then to the standard error the worker was given
    try:
        import torch

        torch.set_num_threads(1)
        run_worker(load_spec(Path(spec_path)), storage_url, study, load_source(data, data_dir))
    except Exception:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} worker {owner_tag()}: {traceback.format_exc()}",
              file=sys.stderr, flush=True)
        sys.exit(1)


def start_workers(spec: SweepSpec, storage_url: str, study: str, workers: int, data: str = "auto",
                  data_dir: str | None = None):
    """N worker processes on this machine, training on the digits `data` names (data.load_source); returns
    them (multiprocessing.Process objects)."""
    import optuna

    from ..procs import spawn_context

    # Create the schema and every stage's study before the workers race to (a fresh database included).
    storage = open_storage(storage_url)
    for index, stage in enumerate(spec.stages):
        optuna.create_study(study_name=stage_study_name(study, index, stage), storage=storage,
                            direction="maximize", load_if_exists=True)
    ctx = spawn_context()
    procs = [ctx.Process(target=_worker_main, args=(os.getpid(), str(spec.path), storage_url, study, data, data_dir), daemon=True)
             for _ in range(workers)]
    for p in procs:
        p.start()
    return procs
