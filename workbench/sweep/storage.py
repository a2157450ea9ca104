"""Where a sweep lives: Optuna storage (a journal file, or a database several machines share), one study per
stage, the spec kept beside, and the trials read back, summarised, chosen from and exported."""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.export.reproduction import StageTable
from workbench.format import stage_cells
from workbench.fsutil import atomic_write_text
from workbench.paper.config import ConfigError, RunConfig
from workbench.procs import whole_write
from workbench.records.folder import runs_dir
from workbench.sweep.spec import Stage, SweepSpec, parse_spec

MAX_RETRIES = 2  # a trial whose worker died is tried again at most this often


STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_study_name(study: str) -> str:
    """A study's name names files under runs/sweeps/: a name, never a path."""
    if not STUDY_NAME.fullmatch(study):
        raise ConfigError("study", f"a name of letters, digits, '.', '_' and '-' (at most 100, not starting with "
                                   f"'.' or '-'), got {study[:40]!r}")
    return study


def default_storage(study: str) -> str:
    return str(runs_dir() / "sweeps" / f"{study}.journal")


def trials_csv_path(study: str, storage: str) -> Path:
    """Beside the journal file; under runs/sweeps/ for a database."""
    if is_database(storage):
        return runs_dir() / "sweeps" / f"{study}-trials.csv"
    return Path(storage).with_name(f"{study}-trials.csv")


def is_database(storage: str) -> bool:
    return "://" in storage


def storage_exists(storage: str) -> bool:
    """Whether there may be a sweep to read: a database (asked when opened), or a journal file that exists."""
    return is_database(storage) or Path(storage).exists()


def open_storage(storage: str):
    """A database URL gets Optuna's RDB storage with heartbeats (a dead worker's trial fails and is retried);
    anything else is a journal file, locked for the processes of one machine."""
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


    class WholeWritesJournal(JournalFileBackend):
        """A worker told to stop finishes the record it is writing, and lets go of the file's lock."""

        def append_logs(self, logs) -> None:
            with whole_write():
                super().append_logs(logs)

    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(WholeWritesJournal(str(path), lock_obj=JournalFileOpenLock(str(path))))


def stage_study_name(study: str, index: int, stage: Stage) -> str:
    return f"{study}/{index + 1}-{stage.name}"


def record_spec(storage, study: str, spec: SweepSpec) -> None:
    """Keep the spec's text with the study, so `sweep --show` needs only the study's name."""
    import optuna

    meta = optuna.create_study(study_name=f"{study}/spec", storage=storage, load_if_exists=True)
    if "spec_text" not in meta.user_attrs:
        meta.set_user_attr("spec_text", spec.path.read_text(encoding="utf-8"))
        meta.set_user_attr("spec_path", str(spec.path))


def record_finals(storage, study: str, finals: list[dict]) -> None:
    """The final measurements' runs ({label, config, run}), kept with the study: a rerun with the same choices
    shows them instead of training them again."""
    import optuna

    optuna.load_study(study_name=f"{study}/spec", storage=storage).set_user_attr("finals", finals)


def recorded_finals(storage, study: str) -> list[dict]:
    import optuna

    try:
        finals = optuna.load_study(study_name=f"{study}/spec", storage=storage).user_attrs.get("finals")
    except KeyError:
        return []
    return finals if isinstance(finals, list) else []


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
    pruned_at: int | None = None  # the epoch after which the pruner stopped it
    batch: int | None = None  # how many trials trained with it in one engine call
    epoch: int | None = None  # while it trains: the epochs all its rounds have done, of `epochs`
    epochs: int | None = None


def stage_trials(storage, study: str, index: int, stage: Stage) -> list[Trial]:
    """A stage's trials, each grid point once: duplicates pruned, a retried point counted by its finished try; a
    range stage's surplus trial (asked beyond its budget by a worker beside another, ended at once) left out."""
    import optuna

    try:
        s = optuna.load_study(study_name=stage_study_name(study, index, stage), storage=storage)
    except KeyError:
        return []
    return [trial_of(index, t) for t in s.get_trials(deepcopy=False)
            if t.user_attrs.get("duplicate_of") is None and not t.user_attrs.get("surplus")]


def trial_of(index: int, frozen) -> Trial:
    """A stage's Optuna trial as the sweep shows it."""
    attrs = frozen.user_attrs
    return Trial(index, frozen.number, frozen.state.name.lower(), dict(frozen.params), attrs.get("val_mean"),
                 attrs.get("val_std"), attrs.get("test_mean"), attrs.get("test_std"), attrs.get("seconds"),
                 str(attrs.get("worker", "")), attrs.get("pruned_at"), attrs.get("batch"), attrs.get("epoch"),
                 attrs.get("epochs"))


@dataclass
class StageSummary:
    index: int
    stage: Stage
    done: int
    running: int
    best: Trial | None
    pruned: int = 0


def stage_summaries(spec: SweepSpec, trials: list[Trial]) -> list[StageSummary]:
    """Per stage: finished and running trials, and the best by validation score."""
    out = []
    for i, stage in enumerate(spec.stages):
        mine = [t for t in trials if t.stage == i]
        done = [t for t in mine if t.state == "complete" and t.val_mean is not None]
        best = max(done, key=lambda t: t.val_mean) if done else None
        out.append(StageSummary(i, stage, len(done), sum(t.state == "running" for t in mine), best,
                                sum(t.state == "pruned" for t in mine)))
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
                     "test_std", "seconds", "batch", "pruned_at", "worker"])
    for t in trials:
        writer.writerow([t.stage + 1, spec.stages[t.stage].name, t.number, t.state,
                         *[t.params.get(p, "") for p in params],
                         *["" if v is None else round(v, 6) for v in (t.val_mean, t.val_std, t.test_mean, t.test_std)],
                         "" if t.seconds is None else round(t.seconds, 2), "" if t.batch is None else t.batch,
                         "" if t.pruned_at is None else t.pruned_at, t.worker])
    return buffer.getvalue()


def all_trials(spec: SweepSpec, storage, study: str) -> list[Trial]:
    return [t for i, stage in enumerate(spec.stages) for t in stage_trials(storage, study, i, stage)]


def export_trials(spec: SweepSpec, storage, study: str, out: Path) -> Path:
    atomic_write_text(out, trials_csv(spec, all_trials(spec, storage, study)))
    return out


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


def stage_tables(runs: Path) -> list[StageTable]:
    """The stage table of every sweep whose journal lies under runs/sweeps/, as `sweep --show` reads it, for the
    reproduction report; a journal that cannot be read is named in its place, never fatal to the report."""
    tables = []
    folder = Path(runs) / "sweeps"
    for journal in sorted(folder.glob("*.journal")) if folder.is_dir() else []:
        study = journal.stem
        try:
            storage = open_storage(str(journal))
            spec = recorded_spec(storage, study)
            summaries = stage_summaries(spec, all_trials(spec, storage, study))
        except Exception as exc:  # a damaged journal, another program's file: said, and the report goes on
            tables.append(StageTable(study, [], f"cannot be read: {type(exc).__name__}: {str(exc)[:120]}"))
            continue
        tables.append(StageTable(f"{study}: {spec.title}", [stage_cells(s, with_running=False) for s in summaries]))
    return tables
