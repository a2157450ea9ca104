"""Hyperparameter sweeps: the paper's staged grid searches, scored honestly, on one machine or many.

A spec (presets/sweeps/*.toml) has a base config and stages run in order; each stage searches a few parameters
(an exact grid, or ranges for a model-based search) and the best of a stage is the base of the next, as the paper
tuned one group of parameters at a time. Trials are scored on validation pairs drawn from training digits the
trial's train pairs do not use, never on the test pairs; test accuracy is recorded beside, to show the gap.

Engine: Optuna. One study per stage, named "<study>/<stage number>-<stage name>". Storage: a journal file under
runs/sweeps/ (no server), shared by the worker processes of one machine; or a database URL (PostgreSQL) that
workers on several machines join.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import FIELDS, ConfigError, PaperScore, RunConfig, coerce, from_dict
from .fsutil import atomic_write_text
from .runs import runs_dir

SWEEPABLE = {k for k, spec in FIELDS.items() if k not in ("device", "seed", "rounds", "epochs", "pairs")}
SPEC_KEYS = {"title", "base", "stage", "paper", "validation_pairs", "final_rounds"}
STAGE_KEYS = {"name", "grid", "range", "trials"}
MAX_RETRIES = 2


@dataclass
class Stage:
    name: str
    grid: dict[str, list] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    trials: int = 0  # for ranges: how many trials the model-based search gets

    @property
    def is_grid(self) -> bool:
        return bool(self.grid)

    def size(self) -> int:
        if self.is_grid:
            n = 1
            for values in self.grid.values():
                n *= len(values)
            return n
        return self.trials


@dataclass
class SweepSpec:
    name: str
    title: str
    base: RunConfig
    stages: list[Stage]
    validation_pairs: int = 500
    final_rounds: int = 10
    paper: PaperScore | None = None
    path: Path | None = None


def sweeps_dir() -> Path:
    from .config import presets_dir

    return presets_dir() / "sweeps"


def find_spec(name: str) -> Path:
    path = Path(name)
    if path.suffix == ".toml" and path.exists():
        return path
    candidate = sweeps_dir() / f"{name}.toml"
    if not candidate.exists():
        known = ", ".join(sorted(p.stem for p in sweeps_dir().glob("*.toml")))
        raise ConfigError("spec", f"no sweep spec named {name!r} (known: {known})")
    return candidate


def load_spec(path: Path) -> SweepSpec:
    """Read a sweep spec; every error names the file and the key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("file", f"cannot read: {getattr(exc, 'strerror', None) or exc}", str(path)) from None
    return parse_spec(text, Path(path))


def parse_spec(text: str, path: Path) -> SweepSpec:
    source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", f"not valid TOML: {exc}", source) from None
    for key in data:
        if key not in SPEC_KEYS:
            raise ConfigError(key, f"unknown key (known: {', '.join(sorted(SPEC_KEYS))})", source)
    base = from_dict(data.get("base", {}), source)
    stages_data = data.get("stage", [])
    if not isinstance(stages_data, list) or not stages_data:
        raise ConfigError("stage", "a sweep needs at least one [[stage]]", source)
    stages = [parse_stage(i, s, base, source) for i, s in enumerate(stages_data)]
    paper = None
    if "paper" in data:
        p = data["paper"]
        if not isinstance(p, dict) or not isinstance(p.get("score"), (int, float)):
            raise ConfigError("paper.score", "a number is needed", source)
        paper = PaperScore(str(p.get("table", "")), str(p.get("row", "")), float(p["score"]), None,
                           str(p.get("note", "")))
    validation = data.get("validation_pairs", 500)
    if isinstance(validation, bool) or not isinstance(validation, int) or validation < 10:
        raise ConfigError("validation_pairs", f"a whole number of at least 10, got {validation!r}", source)
    final_rounds = data.get("final_rounds", 10)
    if isinstance(final_rounds, bool) or not isinstance(final_rounds, int) or not 1 <= final_rounds <= 100:
        raise ConfigError("final_rounds", f"a whole number in 1..100, got {final_rounds!r}", source)
    title = data.get("title", Path(path).stem)
    return SweepSpec(Path(path).stem, str(title), base, stages, validation, final_rounds, paper, Path(path))


def parse_stage(index: int, data: Any, base: RunConfig, source: str) -> Stage:
    where = f"stage[{index}]"
    if not isinstance(data, dict):
        raise ConfigError(where, "must be a table", source)
    for key in data:
        if key not in STAGE_KEYS:
            raise ConfigError(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(STAGE_KEYS))})", source)
    stage = Stage(name=str(data.get("name", f"stage {index + 1}")))
    grid, ranges = data.get("grid", {}), data.get("range", {})
    if not grid and not ranges:
        raise ConfigError(where, "needs a grid or a range", source)
    if grid and ranges:
        raise ConfigError(where, "has both a grid and a range: one kind of search per stage", source)
    for param, values in grid.items():
        key = f"{where}.grid.{param}"
        check_param(param, key, base, source)
        if not isinstance(values, list) or not values:
            raise ConfigError(key, "an empty grid: list at least one value", source)
        try:
            stage.grid[param] = [coerce(param, v) for v in values]
        except ConfigError as exc:
            raise exc.at(key, source) from None
        if len(set(stage.grid[param])) != len(stage.grid[param]):
            raise ConfigError(key, "lists a value twice", source)
    for param, bounds in ranges.items():
        key = f"{where}.range.{param}"
        check_param(param, key, base, source)
        if FIELDS[param].kind is not float:
            raise ConfigError(key, "ranges are for real-valued parameters; use a grid", source)
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise ConfigError(key, "a range is [low, high]", source)
        try:
            low, high = (coerce(param, b) for b in bounds)
        except ConfigError as exc:
            raise exc.at(key, source) from None
        if not low < high:
            raise ConfigError(key, f"low must be below high, got [{low}, {high}]", source)
        stage.ranges[param] = (low, high)
    if ranges:
        trials = data.get("trials")
        if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= 10000:
            raise ConfigError(f"{where}.trials", f"a range search needs trials = 1..10000, got {trials!r}", source)
        stage.trials = trials
    return stage


def check_param(param: str, key: str, base: RunConfig, source: str) -> None:
    if param not in SWEEPABLE:
        raise ConfigError(key, f"unknown or unsweepable parameter (sweepable: {', '.join(sorted(SWEEPABLE))})",
                          source)
    if base.subnet not in FIELDS[param].subnets:
        raise ConfigError(key, f"the {base.subnet} subnet has no {param}", source)


# ------------------------------------------------------------------ storage

def default_storage(study: str) -> str:
    return str(runs_dir() / "sweeps" / f"{study}.journal")


def trials_csv_path(study: str, storage: str) -> Path:
    """Beside the journal file; under runs/sweeps/ for a database."""
    if is_database(storage):
        return runs_dir() / "sweeps" / f"{study}-trials.csv"
    return Path(storage).with_name(f"{study}-trials.csv")


def is_database(storage: str) -> bool:
    return "://" in storage


def open_storage(storage: str):
    """A database URL gets Optuna's RDB storage with heartbeats (a dead worker's trial fails and is retried);
    anything else is a journal file, locked for the processes of one machine."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own tables say what happens
    if is_database(storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                storage, heartbeat_interval=5, grace_period=20,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRIES))
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def stage_study_name(study: str, index: int, stage: Stage) -> str:
    return f"{study}/{index + 1}-{stage.name}"


def record_spec(storage, study: str, spec: SweepSpec) -> None:
    """Keep the spec's text with the study, so `sweep --show` needs only the study's name."""
    import optuna

    meta = optuna.create_study(study_name=f"{study}/spec", storage=storage, load_if_exists=True)
    if "spec_text" not in meta.user_attrs:
        meta.set_user_attr("spec_text", spec.path.read_text(encoding="utf-8"))
        meta.set_user_attr("spec_path", str(spec.path))


def recorded_spec(storage, study: str) -> SweepSpec:
    import optuna

    try:
        meta = optuna.load_study(study_name=f"{study}/spec", storage=storage)
    except KeyError:
        raise ConfigError("study", f"no sweep named {study!r} in this storage") from None
    spec = parse_spec(meta.user_attrs["spec_text"], Path(meta.user_attrs.get("spec_path", study)))
    return spec


# ------------------------------------------------------------------ results

@dataclass
class Trial:
    stage: int
    number: int
    state: str
    params: dict[str, Any]
    val_mean: float | None
    val_std: float | None
    test_mean: float | None
    test_std: float | None
    seconds: float | None
    worker: str


def stage_trials(storage, study: str, index: int, stage: Stage) -> list[Trial]:
    """A stage's trials, each grid point once: duplicates pruned, a retried point counted by its finished try."""
    import optuna

    try:
        s = optuna.load_study(study_name=stage_study_name(study, index, stage), storage=storage)
    except KeyError:
        return []
    out = []
    for t in s.get_trials(deepcopy=False):
        if t.user_attrs.get("duplicate_of") is not None:
            continue
        out.append(Trial(index, t.number, t.state.name.lower(), dict(t.params), t.user_attrs.get("val_mean"),
                         t.user_attrs.get("val_std"), t.user_attrs.get("test_mean"), t.user_attrs.get("test_std"),
                         t.user_attrs.get("seconds"), str(t.user_attrs.get("worker", ""))))
    return out


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


@dataclass
class StageSummary:
    index: int
    stage: Stage
    done: int
    running: int
    best: Trial | None


def stage_summaries(spec: SweepSpec, trials: list[Trial]) -> list[StageSummary]:
    """Per stage: finished and running trials, and the best by validation score."""
    out = []
    for i, stage in enumerate(spec.stages):
        mine = [t for t in trials if t.stage == i]
        done = [t for t in mine if t.state == "complete" and t.val_mean is not None]
        best = max(done, key=lambda t: t.val_mean) if done else None
        out.append(StageSummary(i, stage, len(done), sum(t.state == "running" for t in mine), best))
    return out


def best_params(trials: list[Trial]) -> dict[str, Any] | None:
    done = [t for t in trials if t.state == "complete" and t.val_mean is not None]
    if not done:
        return None
    return max(done, key=lambda t: (t.val_mean, -t.number)).params


def stage_base(spec: SweepSpec, storage, study: str, index: int) -> RunConfig:
    """The spec's base with the best params of every earlier stage."""
    config = spec.base
    for k in range(index):
        best = best_params(stage_trials(storage, study, k, spec.stages[k]))
        if best is None:
            raise RuntimeError(f"stage {k + 1} ({spec.stages[k].name}) has no finished trial")
        config = config.replace(**best)
    return config


def trials_csv(spec: SweepSpec, trials: list[Trial]) -> str:
    params = sorted({p for t in trials for p in t.params})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["stage", "stage_name", "trial", "state", *params, "val_mean", "val_std", "test_mean",
                     "test_std", "seconds", "worker"])
    for t in trials:
        writer.writerow([t.stage + 1, spec.stages[t.stage].name, t.number, t.state,
                         *[t.params.get(p, "") for p in params],
                         *["" if v is None else round(v, 6) for v in (t.val_mean, t.val_std, t.test_mean, t.test_std)],
                         "" if t.seconds is None else round(t.seconds, 2), t.worker])
    return buffer.getvalue()


def all_trials(spec: SweepSpec, storage, study: str) -> list[Trial]:
    return [t for i, stage in enumerate(spec.stages) for t in stage_trials(storage, study, i, stage)]


def export_trials(spec: SweepSpec, storage, study: str, out: Path) -> Path:
    atomic_write_text(out, trials_csv(spec, all_trials(spec, storage, study)))
    return out


# ------------------------------------------------------------------ a worker

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

    from .data import load_source
    from .engine import run_configs

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
            for other in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
                if other.number < trial.number and other.params == params:
                    # two workers drew one grid point: the earlier trial owns it
                    trial.set_user_attr("duplicate_of", other.number)
                    raise optuna.TrialPruned()
            config = base.replace(**params)
            started = time.perf_counter()
            result = run_configs([config], source, cancel=cancel, validation=spec.validation_pairs)[0]
            if result.status != "done":
                raise RuntimeError(result.reason or result.status)
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


def _worker_main(spec_path: str, storage_url: str, study: str) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us on Ctrl-C
    import torch

    torch.set_num_threads(1)
    run_worker(load_spec(Path(spec_path)), storage_url, study)


def start_workers(spec: SweepSpec, storage_url: str, study: str, workers: int):
    """N worker processes on this machine; returns them (multiprocessing.Process objects)."""
    import multiprocessing

    import optuna

    # Create the schema and every stage's study before the workers race to (a fresh database included).
    storage = open_storage(storage_url)
    for index, stage in enumerate(spec.stages):
        optuna.create_study(study_name=stage_study_name(study, index, stage), storage=storage,
                            direction="maximize", load_if_exists=True)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(str(spec.path), storage_url, study), daemon=True)
             for _ in range(workers)]
    for p in procs:
        p.start()
    return procs


def final_runs(spec: SweepSpec, storage, study: str) -> list[tuple[str, RunConfig, float | None]]:
    """The validation-selected config after each stage, at the protocol's rounds: (label, config, val mean)."""
    out = []
    config = spec.base
    for i, stage in enumerate(spec.stages):
        trials = stage_trials(storage, study, i, stage)
        best = best_params(trials)
        if best is None:
            break
        config = config.replace(**best)
        val = max(t.val_mean for t in trials if t.state == "complete" and t.val_mean is not None)
        out.append((f"{study} after {stage.name}", config.replace(rounds=spec.final_rounds), val))
    return out
