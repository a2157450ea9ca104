"""A sweep worker: works through the stages in order, one trial at a time, beside whatever other workers share
the storage; and the worker processes of one machine."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from .spec import Stage, SweepSpec, load_spec
from .storage import (MAX_RETRIES, Trial, is_database, open_storage, stage_base, stage_study_name)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_trials(study) -> int:
    """Journal storage has no heartbeat: a running trial whose worker on this machine is gone is failed and its
    point enqueued again (at most MAX_RETRIES times). A database storage does this through Optuna's heartbeat."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    reaped = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        name, _, pid = worker.rpartition(":")
        if name != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        retries = int(t.user_attrs.get("retry", 0))
        if retries < MAX_RETRIES:
            study.enqueue_trial(dict(t.params), user_attrs={"retry": retries + 1, "retry_of": t.number})
        reaped += 1
    return reaped


def point_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


def open_points(stage: Stage, trials) -> set[tuple]:
    """Grid points that no trial has started: a failed point comes back only through its enqueued retry."""
    import itertools

    from optuna.trial import TrialState

    names = list(stage.grid)
    points = {point_key(dict(zip(names, combo))) for combo in itertools.product(*stage.grid.values())}
    started = {point_key(t.params) for t in trials if t.state != TrialState.WAITING and t.params}
    return points - started


def run_worker(spec: SweepSpec, storage_url: str, study: str, source=None, cancel=None,
               on_trial: Callable[[Trial], None] | None = None, poll_s: float = 0.5) -> None:
    """Work through every stage in order, with whatever other workers share the storage."""
    import optuna
    from optuna.trial import TrialState

    from ..data import load_source
    from ..engine import run_configs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = source or load_source("auto")
    storage = open_storage(storage_url)
    me = worker_id()
    for index, stage in enumerate(spec.stages):
        if cancel is not None and cancel.is_set():
            return
        base = stage_base(spec, storage, study, index)
        if stage.is_grid:
            sampler = optuna.samplers.GridSampler(stage.grid, seed=spec.base.seed)
        else:
            sampler = optuna.samplers.TPESampler(seed=spec.base.seed + os.getpid(), n_startup_trials=min(10, stage.trials))
        s = optuna.create_study(study_name=stage_study_name(study, index, stage), storage=storage,
                                direction="maximize", sampler=sampler, load_if_exists=True)

        def objective(trial) -> float:
            trial.set_user_attr("worker", me)
            if stage.is_grid:
                params = {p: trial.suggest_categorical(p, values) for p, values in stage.grid.items()}
            else:
                params = {p: trial.suggest_float(p, lo, hi) for p, (lo, hi) in stage.ranges.items()}
            def give_way_to_an_earlier_twin() -> None:
                for other in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
                    if other.number < trial.number and other.params == params:
                        # two workers drew one grid point: the earlier trial owns it
                        trial.set_user_attr("duplicate_of", other.number)
                        raise optuna.TrialPruned()

            give_way_to_an_earlier_twin()
            config = base.replace(**params)
            started = time.perf_counter()
            result = run_configs([config], source, cancel=cancel, validation=spec.validation_pairs)[0]
            if result.status != "done":
                raise RuntimeError(result.reason or result.status)
            # again: the twin may have drawn the point just before this trial, yet written it just after it looked
            give_way_to_an_earlier_twin()
            val_mean, val_std = result.val_mean_std()
            test_mean, test_std = result.mean_std()
            for key, value in (("val_mean", val_mean), ("val_std", val_std), ("test_mean", test_mean),
                               ("test_std", test_std), ("seconds", time.perf_counter() - started)):
                trial.set_user_attr(key, value)
            return val_mean

        def report(study_, frozen) -> None:
            if on_trial is not None:
                on_trial(Trial(index, frozen.number, frozen.state.name.lower(), dict(frozen.params),
                               frozen.user_attrs.get("val_mean"), frozen.user_attrs.get("val_std"),
                               frozen.user_attrs.get("test_mean"), frozen.user_attrs.get("test_std"),
                               frozen.user_attrs.get("seconds"), me))
            if cancel is not None and cancel.is_set():
                study_.stop()

        while True:
            if not is_database(storage_url):
                reap_dead_trials(s)
            trials = s.get_trials(deepcopy=False)
            waiting = [t for t in trials if t.state == TrialState.WAITING]
            counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.RUNNING)
                       and t.user_attrs.get("duplicate_of") is None]
            remaining = len(open_points(stage, trials)) if stage.is_grid else stage.trials - len(counted)
            if cancel is not None and cancel.is_set():
                return
            if waiting or remaining > 0:
                s.optimize(objective, n_trials=1, catch=(RuntimeError,), callbacks=[report])
                continue
            if any(t.state == TrialState.RUNNING for t in trials):
                time.sleep(poll_s)  # other workers are finishing this stage's last points
                continue
            break


def max_workers() -> int:
    """Worker processes one machine may start: one per core (each holds its own torch, several hundred MB)."""
    return os.cpu_count() or 1


def _worker_main(parent: int, spec_path: str, storage_url: str, study: str, data: str, data_dir: str | None) -> None:
    import signal

    from ..data import load_source
    from ..procs import exit_with_parent

    exit_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us on Ctrl-C
    import torch

    torch.set_num_threads(1)
    run_worker(load_spec(Path(spec_path)), storage_url, study, load_source(data, data_dir))


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
