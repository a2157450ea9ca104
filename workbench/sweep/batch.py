"""A worker's batch of trials: asked of Optuna together, trained in one engine call (trials of one architecture in
one stack; other architectures in the same call, a stack each, on the worker's core), told back one by one. A
trial's numbers are those it gets alone: the engine's replicas never depend on what trains beside them."""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

from workbench.procs import owner_tag
from workbench.sweep.spec import Stage, SweepSpec
from workbench.sweep.storage import Trial, trial_of

RANGE_BATCHES = 4  # a range stage is asked in at least this many batches, so the model-based search learns between


@dataclass
class Asked:
    trial: Any  # optuna.Trial, running
    params: dict[str, Any]
    retry: int = 0


def point_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


def grid_points(stage: Stage) -> set[tuple]:
    names = list(stage.grid)
    return {point_key(dict(zip(names, combo))) for combo in itertools.product(*stage.grid.values())}


def open_points(stage: Stage, trials) -> set[tuple]:
    """Grid points that no trial has started or is queued to start: a failed point comes back only through its
    enqueued retry."""
    from optuna.trial import TrialState

    started = {point_key(t.params) for t in trials if t.state != TrialState.WAITING and t.params}
    queued = {point_key(t.system_attrs.get("fixed_params") or {}) for t in trials if t.state == TrialState.WAITING}
    return grid_points(stage) - started - queued


def counted(trials) -> list:
    """The trials a range stage's budget has spent: finished, pruned by the pruner, or running (never a twin)."""
    from optuna.trial import TrialState

    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED)
            and t.user_attrs.get("duplicate_of") is None]


def left_to_ask(stage: Stage, trials) -> int:
    """Trials still to start: queued ones, and open grid points or the rest of a range stage's budget."""
    from optuna.trial import TrialState

    waiting = sum(t.state == TrialState.WAITING for t in trials)
    remaining = len(open_points(stage, trials)) if stage.is_grid else stage.trials - len(counted(trials))
    return waiting + max(0, remaining)


def batch_size(stage: Stage, batch: int, workers: int) -> int:
    """How many trials a worker asks at once: at most `batch`, this machine's workers sharing the stage evenly;
    a range stage in at least RANGE_BATCHES batches."""
    cap = batch if stage.is_grid else min(batch, max(1, stage.trials // RANGE_BATCHES))
    return max(1, min(cap, math.ceil(stage.size() / max(1, workers))))


def stackable_points(stage: Stage, base, points: list[tuple]) -> list[list[tuple]]:
    """Open grid points grouped by the architecture their config trains (engine.stack_groups' rule): a group
    trains as one stack, while points of different architectures gain nothing from one call and are better taken
    one at a time, so that every worker stays busy to the stage's end."""
    return by_architecture(base, points, dict)


def by_architecture(base, items: list, params_of: Callable[[Any], dict[str, Any]]) -> list[list]:
    """`items` grouped by the architecture of the config their parameters make, in first-seen order."""
    groups: dict[tuple, list] = {}
    for item in items:
        groups.setdefault(architecture(base, params_of(item)), []).append(item)
    return list(groups.values())


def queue_points(study, stage: Stage, base, trials, size: int, workers: int = 1) -> None:
    """Queues, by name, up to `size` open grid points of one architecture (a trial then draws a whole point, so a
    point whose trial ended before it drew its parameters is tried again), and no more than this machine's share
    of them, so that the workers split each group (its points may cost unlike: a group of 45 epochs beside one of
    30 left one worker idle a third of the stage). Each worker starts from its own group, so that workers which
    queue at once take different points."""
    from optuna.trial import TrialState

    if any(t.state == TrialState.WAITING for t in trials):
        return
    groups = stackable_points(stage, base, sorted(open_points(stage, trials)))
    if groups:
        group = groups[os.getpid() % len(groups)]
        turn = os.getpid() % len(group)
        for point in (group[turn:] + group[:turn])[:min(size, math.ceil(len(group) / max(1, workers)))]:
            study.enqueue_trial(dict(point))


def architecture(base, params: dict[str, Any]) -> tuple:
    return base.replace(**params).architecture_key()


def next_architecture(trials, base) -> tuple | None:
    """The architecture of the queued point that the next ask() takes (Optuna takes the oldest waiting trial)."""
    from optuna.trial import TrialState

    waiting = [t for t in trials if t.state == TrialState.WAITING]
    return architecture(base, min(waiting, key=lambda t: t.number).system_attrs.get("fixed_params") or {}) \
        if waiting else None


def draw_params(stage: Stage, trial) -> dict[str, Any]:
    if stage.is_grid:
        return {p: trial.suggest_categorical(p, values) for p, values in stage.grid.items()}
    return {p: trial.suggest_float(p, lo, hi) for p, (lo, hi) in stage.ranges.items()}


def ask_batch(study, stage: Stage, base, size: int, workers: int = 1) -> list[Asked]:
    """Up to `size` running trials, each with its parameters drawn: a grid stage's from queued points only (this
    machine's `workers` sharing each group of them)."""
    from optuna.trial import TrialState

    if stage.is_grid:
        queue_points(study, stage, base, study.get_trials(deepcopy=False), size, workers)
    asked: list[Asked] = []
    while len(asked) < size:
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if stage.is_grid and not waiting:
            break  # the rest is other workers': a fresh draw would repeat a point
        if stage.is_grid and asked and next_architecture(trials, base) != architecture(base, asked[0].params):
            break  # another worker's queued point: leave it to them, who are about to ask for it
        if not stage.is_grid and not waiting and stage.trials - len(counted(trials)) <= 0:
            break
        with warnings.catch_warnings():  # heartbeats() beats for a batch asked by hand, as optimize() would
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            trial = study.ask()
        if not stage.is_grid and beyond_budget(study, stage, trial):
            break
        trial.set_user_attr("worker", owner_tag())
        asked.append(Asked(trial, draw_params(stage, trial), int(trial.user_attrs.get("retry", 0))))
    return asked


def beyond_budget(study, stage: Stage, trial) -> bool:
    """Two workers may both see a range stage's last trial unasked and both ask it: the trial whose number comes
    after the budget's last ends at once, failed and marked surplus (never shown, never counted; a failed trial is
    one the sampler leaves aside). True when it did."""
    from optuna.trial import TrialState

    spent = sorted(t.number for t in counted(study.get_trials(deepcopy=False)))
    if trial.number not in spent or spent.index(trial.number) < stage.trials:
        return False
    trial.set_user_attr("surplus", True)
    study.tell(trial, state=TrialState.FAIL)
    return True


def twin_of(study, trial, params: dict[str, Any]) -> int | None:
    """The trial that owns this trial's point when two drew it: a finished twin, else the earlier one (a trial
    may draw its parameters after a later one has finished with them: under load the numbers alone let both
    count). None when this trial owns it."""
    from optuna.trial import TrialState

    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if other.number == trial.number or other.params != params or other.user_attrs.get("duplicate_of") is not None:
            continue
        if other.state == TrialState.COMPLETE or other.number < trial.number:
            return other.number
    return None


def give_way(study, asked: Asked) -> bool:
    """Ends a trial whose point a twin owns (pruned, marked as the twin's duplicate); True when it did."""
    from optuna.trial import TrialState

    owner = twin_of(study, asked.trial, asked.params)
    if owner is None:
        return False
    asked.trial.set_user_attr("duplicate_of", owner)
    study.tell(asked.trial, state=TrialState.PRUNED)
    return True


def requeue(study, params: dict[str, Any], retry: int, retry_of: int) -> None:
    study.enqueue_trial(dict(params), user_attrs={"retry": retry, "retry_of": retry_of})


@contextmanager
def heartbeats(storage, asked: list[Asked]):
    """A database storage fails a trial whose heartbeat stops (its worker died) and queues it again; Optuna beats
    only inside optimize(), so a batch asked by hand beats here, every trial of it."""
    import optuna

    if not isinstance(storage, optuna.storages.RDBStorage) or storage.get_heartbeat_interval() is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            for a in asked:
                storage.record_heartbeat(a.trial._trial_id)
            if stop.wait(storage.get_heartbeat_interval()):
                return

    thread = threading.Thread(target=beat, name="trial-heartbeats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Progress:
    """A trial's epoch is done once all its rounds have done it. A batch's trials finish together, so meanwhile each
    says how many epochs it has done (user attributes "epoch" of "epochs"; the trials table shows "running
    12/45"), and the pruner, if any, hears its rounds' validation scores."""

    def __init__(self, asked: list[Asked], configs: list, watch=None) -> None:
        self.asked, self.rounds, self.watch = asked, [c.rounds for c in configs], watch
        self.reported: dict[tuple[int, int], list] = {}  # (run, epoch) -> the records of its rounds so far
        for a, config in zip(asked, configs):
            self.say(a, "epochs", config.epochs)

    def on_epoch(self, record) -> None:
        key = (record.run, record.epoch)
        records = self.reported.setdefault(key, [])
        records.append(record)
        if len(records) < self.rounds[record.run]:
            return
        del self.reported[key]
        self.say(self.asked[record.run], "epoch", record.epoch)
        if self.watch is not None:
            self.watch.epoch_done(record.run, record.epoch, records)

    @staticmethod
    def say(asked: Asked, key: str, value: int) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            asked.trial.set_user_attr(key, value)
        except UpdateFinishedTrialError:  # a database's reaper failed it (its heartbeat was late): told later
            pass


@dataclass
class Batch:
    """One stage's trials of one worker: what they train from, and where what they scored goes."""

    spec: SweepSpec
    index: int  # the stage's
    study: Any  # optuna.Study
    storage: Any
    base: Any  # RunConfig: the spec's base with the earlier stages' choices
    source: Any
    cancel: Any = None
    on_trial: Callable[[Trial], None] | None = None
    pruning: Any = None  # pruning.Pruning or None

    def train(self, asked: list[Asked]) -> None:
        """Trains the batch's trials (a grid batch in one engine call per architecture, a range batch in one) and
        tells Optuna each one's score."""
        live = [a for a in asked if not give_way(self.study, a)]
        # should two workers' queued points cross, each architecture of a grid batch trains on its own
        groups = by_architecture(self.base, live, lambda a: a.params) if self.spec.stages[self.index].is_grid \
            else [live]
        with heartbeats(self.storage, live):
            for group in groups:
                if group:  # a range batch whose every trial gave way
                    self.train_together(group)

    def train_together(self, live: list[Asked]) -> None:
        from workbench import engine

        configs = [self.base.replace(**a.params) for a in live]
        watch = self.pruning.watch(self.study, live, configs) if self.pruning is not None else None
        progress = Progress(live, configs, watch)
        started = time.perf_counter()
        hooks = {"stop_run": watch.stopped} if watch is not None else {}
        results = engine.run_configs(configs, self.source, on_epoch=progress.on_epoch, cancel=self.cancel,
                                     validation=self.spec.validation_pairs, **hooks)
        seconds = (time.perf_counter() - started) / len(live)
        for run, (a, result) in enumerate(zip(live, results)):
            self.tell(a, result, seconds, len(live), watch.pruned.get(run) if watch is not None else None)

    def tell(self, asked: Asked, result, seconds: float, size: int, pruned_at: int | None) -> None:
        from optuna.trial import TrialState

        trial = asked.trial
        trial.set_user_attr("batch", size)
        trial.set_user_attr("seconds", seconds)
        if pruned_at is not None:
            trial.set_user_attr("pruned_at", pruned_at)
            frozen = self.study.tell(trial, state=TrialState.PRUNED)
        elif result.status == "done":
            # again: a twin may have drawn the point just before this trial, yet written it just after it looked
            if give_way(self.study, asked):
                return
            val_mean, val_std = result.val_mean_std()
            test_mean, test_std = result.mean_std()
            for key, value in (("val_mean", val_mean), ("val_std", val_std), ("test_mean", test_mean),
                               ("test_std", test_std)):
                trial.set_user_attr(key, value)
            frozen = self.study.tell(trial, val_mean)
        elif result.status == "cancelled":  # its point waits for the sweep to run again, as a stopped worker's
            frozen = self.study.tell(trial, state=TrialState.FAIL)
            requeue(self.study, asked.params, asked.retry, trial.number)
        else:
            trial.set_user_attr("reason", str(result.reason)[:500])
            frozen = self.study.tell(trial, state=TrialState.FAIL)
        if self.on_trial is not None:
            self.on_trial(trial_of(self.index, frozen))
