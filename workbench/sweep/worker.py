"""A sweep worker: works through the stages in order, a batch of trials at a time (batch.py), beside whatever
other workers share the storage; and the worker processes of one machine."""

from __future__ import annotations

import datetime
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable

from workbench.procs import child_of, owner_gone, owner_tag, sigterm_between_writes, spawn_context, starting_children
from workbench.sweep.batch import Batch, ask_batch, batch_size, left_to_ask, requeue
from workbench.sweep.pruning import pruning_for
from workbench.sweep.spec import Stage, SweepSpec, load_spec
from workbench.sweep.storage import (MAX_RETRIES, Trial, is_database, open_storage, stage_base, stage_study_name,
                                     trials_csv_path)

UNTAGGED_GRACE_S = 60.0  # a trial names its worker within milliseconds of its start; one untagged longer is an orphan


def trial_owner_gone(t) -> bool:
    """Whether a running trial's worker has died: its host:pid is gone, or it never got to name itself (ended
    between the trial's start and its first write) and the trial started long ago."""
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
            requeue(study, t.params, retries + 1, t.number)
        reaped += 1
    return reaped


def run_worker(spec: SweepSpec, storage_url: str, study: str, source=None, cancel=None,
               on_trial: Callable[[Trial], None] | None = None, poll_s: float = 0.5, batch: int | None = None,
               workers: int = 1) -> None:
    """Work through every stage in order, with whatever other workers share the storage: each time, a batch of
    the stage's open trials (at most `batch`, default the spec's; `workers` on this machine share what is left)."""
    import optuna

    from workbench.paper.data import load_source

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = source or load_source("auto")
    storage = open_storage(storage_url)
    batch = batch or spec.batch
    for index, stage in enumerate(spec.stages):
        if cancel is not None and cancel.is_set():
            return
        s = stage_study(spec, storage, study, index)
        trials = Batch(spec, index, s, storage, stage_base(spec, storage, study, index), source, cancel, on_trial,
                       pruning_for(spec, stage))
        while not (cancel is not None and cancel.is_set()):
            if is_database(storage_url):
                with warnings.catch_warnings():  # experimental in Optuna, and needed: a batch is asked by hand
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(s)
            else:
                reap_dead_trials(s, stage)
            known = s.get_trials(deepcopy=False)
            left = left_to_ask(stage, known)
            asked = ask_batch(s, stage, trials.base, batch_size(stage, batch, workers), workers) if left else []
            if asked:
                trials.train(asked)
            elif any(t.state == optuna.trial.TrialState.RUNNING for t in known):
                time.sleep(poll_s)  # other workers are finishing this stage's last points
            elif not left:
                break


def stage_study(spec: SweepSpec, storage, study: str, index: int):
    """The Optuna study of one stage. A grid stage's trials draw queued points (the sampler is never asked);
    a range stage is searched by TPE, told of running trials (constant liar) so that a batch spreads out."""
    import optuna

    stage = spec.stages[index]
    if stage.is_grid:
        sampler = optuna.samplers.RandomSampler(seed=spec.base.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=spec.base.seed + os.getpid(), n_startup_trials=min(10, stage.trials),
                                             constant_liar=True)
    pruning = pruning_for(spec, stage)
    return optuna.create_study(study_name=stage_study_name(study, index, stage), storage=storage,
                               direction="maximize", sampler=sampler, load_if_exists=True,
                               pruner=pruning.pruner() if pruning is not None else optuna.pruners.NopPruner())


def max_workers() -> int:
    """Worker processes one machine may start: one per core (each holds its own torch, several hundred MB)."""
    return os.cpu_count() or 1


def workers_log(study: str, storage_url: str) -> Path:
    """Where a sweep's workers write what made one of them fail: beside the trials CSV."""
    return trials_csv_path(study, storage_url).with_name(f"{study}-workers.log")


def _worker_main(parent: int, spec_path: str, storage_url: str, study: str, data: str, data_dir: str | None,
                 batch: int | None, workers: int) -> None:
    child_of(parent)  # first: a Ctrl-C while torch loads is the parent's to handle
    sigterm_between_writes()

    from workbench.paper.data import load_source

    log = workers_log(study, storage_url)
    try:  # what a worker says (Optuna's warnings, a traceback) goes to the sweep's log, never over the screen
        log.parent.mkdir(parents=True, exist_ok=True)
        os.dup2(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), 2)
    except OSError:
        pass  # then to the standard error the worker was given
    try:
        import torch

        torch.set_num_threads(1)
        run_worker(load_spec(Path(spec_path)), storage_url, study, load_source(data, data_dir), batch=batch,
                   workers=workers)
    except Exception:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} worker {owner_tag()}: {traceback.format_exc()}",
              file=sys.stderr, flush=True)
        sys.exit(1)


def start_workers(spec: SweepSpec, storage_url: str, study: str, workers: int, data: str = "auto",
                  data_dir: str | None = None, batch: int | None = None):
    """N worker processes on this machine, training on the digits `data` names (data.load_source); returns
    them (multiprocessing.Process objects)."""
    import optuna


    # Create the schema and every stage's study before the workers race to (a fresh database included).
    storage = open_storage(storage_url)
    for index, stage in enumerate(spec.stages):
        optuna.create_study(study_name=stage_study_name(study, index, stage), storage=storage,
                            direction="maximize", load_if_exists=True)
    ctx = spawn_context()
    procs = [ctx.Process(target=_worker_main, daemon=True,
                         args=(os.getpid(), str(spec.path), storage_url, study, data, data_dir, batch, workers))
             for _ in range(workers)]
    with starting_children():
        for p in procs:
            p.start()
    return procs
