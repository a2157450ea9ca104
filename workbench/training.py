"""Train named configs and record them: the one path from a config to its run record. The CLI (`run`, `table`),
the app's queue and a sweep's final measurements all come through here, so a run is named, cancelled, saved
(or told why not) and scored against the paper the same way whoever asked for it.

Torch-free at import (the app's queue holds a Group from its first screen); the engine is imported when a group
trains.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .config import RunConfig, name_changes

from .presets import PaperScore, Preset
from .format import config_name, run_name
from .networks import resolve_keep
from .resume import RESUME_FILE, Checkpoints, Continuation, claim, merged
from .runs import RunNotSaved, RunSummary, save_run, summarize


@dataclass
class NamedRun:
    """A config to train under a name, with the paper's score it is measured against (None where it is no row of
    the paper, or an edited one)."""

    name: str
    config: RunConfig
    preset: str | None = None
    paper: PaperScore | None = None
    edited: bool | None = None  # the config is no longer its preset's (None without a preset)
    tags: tuple[str, ...] = ()
    note: str = ""
    weights: str | None = None  # the rounds whose networks the record keeps: all, first, none (None: networks.py)
    resume: Continuation | None = field(default=None, repr=False)  # where it continues from (resume.py)

    @classmethod
    def of(cls, config: RunConfig, preset: Preset | None = None, name: str | None = None,
           tags: tuple[str, ...] = (), note: str = "", weights: str | None = None) -> NamedRun:
        """Named as asked, else after its preset and what differs from it, else after its net and switches."""
        if preset is None:
            return cls(name or config_name(config.subnet, config.weight_sharing, config.aux_loss), config,
                       tags=tuple(tags), note=note, weights=weights)
        edited = not preset.is_row(config)
        default = run_name(preset.name, name_changes(config, preset.config))
        return cls(name or default, config, preset.name, preset.paper_for(config), edited, tuple(tags), note,
                   weights)


class Group:
    """Runs trained in one engine call, and the one rule for cancelling them: a run cancelled while the others
    train stops being reported and is recorded as cancelled with the epochs reported before; its replicas
    finish inside their stack unseen (a config's numbers never depend on its stack-mates). The engine itself
    stops (`is_set`, its cancel flag) once every run not cancelled has reported all its epochs."""

    def __init__(self, runs: list[NamedRun], stop: threading.Event | None = None):
        self.runs = runs
        self.stop = stop or threading.Event()
        self.cancelled: set[int] = set()  # indices into runs
        self.delivered: list[set[tuple[int, int]]] = [set() for _ in runs]  # (round, epoch) reported per run
        self.reported: list[list] = [[] for _ in runs]  # the EpochRecords reported per run
        self.lock = threading.Lock()

    def is_set(self) -> bool:
        return self.stop.is_set()

    def is_cancelled(self, index: int) -> bool:
        return index in self.cancelled or self.stop.is_set()

    def cancel(self, index: int) -> None:
        with self.lock:
            self.cancelled.add(index)
            self._stop_if_only_cancelled_left()

    def cancel_all(self) -> None:
        self.cancelled.update(range(len(self.runs)))
        self.stop.set()

    def accept(self, rec) -> bool:
        """Whether an epoch record is reported: never for a cancelled run."""
        with self.lock:
            if self.is_cancelled(rec.run):
                self._stop_if_only_cancelled_left()
                return False
            self.delivered[rec.run].add((rec.round, rec.epoch))
            self.reported[rec.run].append(rec)
            return True

    def was_reported(self, index: int, round_index: int, epoch: int) -> bool:
        with self.lock:
            return (round_index, epoch) in self.delivered[index]

    def _stop_if_only_cancelled_left(self) -> None:
        total = [run.config.rounds * run.config.epochs - len(run.resume.history if run.resume else ())
                 for run in self.runs]
        if all(i in self.cancelled or len(self.delivered[i]) == total[i] for i in range(len(self.runs))):
            self.stop.set()

    def as_cancelled(self, index: int, result):
        """A run's result as the user cancelled it: the records reported before the cancel, each round cancelled
        at its last reported epoch; no predictions."""
        from .engine import RoundResult

        history = [h for h in result.history if (h.round, h.epoch) in self.delivered[index]]
        last = {h.round: h for h in sorted(history, key=lambda h: h.epoch)}
        rounds = []
        for r in result.rounds:
            h = last.get(r.round)
            rounds.append(RoundResult(round=r.round, seed=r.seed, status="cancelled", epochs=h.epoch if h else 0,
                                      test_acc=h.test_acc if h else None, train_acc=h.train_acc if h else None,
                                      digit_acc=h.digit_acc if h else None, train_loss=h.train_loss if h else None))
        return dataclasses.replace(result, status="cancelled", reason="", rounds=rounds, history=history)


@dataclass
class Recorded:
    """A trained run, as recorded: its summary (with its record's id and path when saved), and why it is not on
    disk when it could not be saved ('' otherwise)."""

    run: NamedRun
    summary: RunSummary
    result: object = field(repr=False)  # engine.RunResult
    unsaved: str = ""
    tracked: str = ""  # where an MLflow store took it, or why it did not ('' when not tracking)
    said: str = ""  # what else happened to the user's records (a cancelled run it continued went to the trash; a
                    # checkpoint could not be written)
    superseded: str = ""  # the id of the cancelled record it continued, once that went to the trash
    sent: bool = False


def most_pairs(source) -> int:
    """Pairs a round can draw from these digits: each split gives two distinct digits a pair."""
    return min(len(source.train), len(source.test)) // 2


def too_many_pairs(pairs: int, most: int, source_name: str) -> str:
    """Why `pairs` cannot be drawn ('' when they can); the form and the refusal below say it alike."""
    if pairs <= most:
        return ""
    return f"{pairs} pairs need {2 * pairs} distinct digits in each split; {source_name} allows at most {most}"


def refusal(configs: list[RunConfig], source, validation: int = 0) -> str:
    """Why these configs cannot train on these digits or devices, named by field ('' when they can): said before
    anything trains. With `validation` (a sweep's trials), the training digits must hold those pairs too."""
    from .engine import EngineError, resolve_device

    for config in configs:
        why = too_many_pairs(config.pairs, most_pairs(source), source.name)
        need = 2 * (config.pairs + validation)
        if not why and validation and need > len(source.train):
            why = (f"{config.pairs} pairs and {validation} validation pairs need {need} distinct training digits; "
                   f"{source.name} has {len(source.train)}")
        if why:
            return f"pairs: {why}"
    try:
        for config in configs:
            resolve_device(config.device)
    except EngineError as exc:
        return str(exc)
    return ""


def train_and_record(group: Group | list[NamedRun], source, engine: str = "batched", runs_root: Path | None = None,
                     on_epoch: Callable | None = None, refuse: bool = True, track: str | None = None) -> list[Recorded]:
    """Trains the group's runs in one engine call and records each under runs_root (None: nothing is written).
    on_epoch sees the epoch records of the runs not cancelled. `source` is the digits, or a function that loads
    them. With `refuse`, what cannot start (the digits, a device, memory) raises EngineError before anything
    trains; without, every failure becomes failed runs, recorded like any other. Saved runs then go to the MLflow
    store `track` names (else DIGIT_WORKBENCH_TRACK's, if set); a store that fails costs a line, not the record."""
    from .engine import EngineError, failed_result, run_configs

    group = group if isinstance(group, Group) else Group(group)
    configs = [run.config for run in group.runs]

    def report(rec) -> None:
        if group.accept(rec) and on_epoch is not None:
            on_epoch(rec)

    source_name = ""
    checkpoints = Checkpoints(group, {})
    try:
        digits = source() if callable(source) else source
        source_name = digits.name
        why = refusal(configs, digits)
        if why:
            raise EngineError(why)
        checkpoints.folders = claim_folders(group.runs, runs_root, engine)
        start = {i: run.resume.states for i, run in enumerate(group.runs) if run.resume}
        results = run_configs(configs, digits, on_epoch=report, cancel=group, engine=engine, start=start,
                              on_states=checkpoints.reached if checkpoints.folders else None)
    except Exception as exc:  # no digits, no device, too big
        if refuse:
            unclaim(checkpoints.folders)
            raise
        reason = str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
        results = [failed_result(config, source_name, engine, reason) for config in configs]
    # a run the user cancelled keeps what was reported before the cancel, never epochs trained unseen after it
    results = [merged(group.as_cancelled(i, r) if i in group.cancelled else r, run.resume)
               for i, (run, r) in enumerate(zip(group.runs, results))]
    recorded = [record(run, result, runs_root, checkpoints.folders.get(i), checkpoints, i)
                for i, (run, result) in enumerate(zip(group.runs, results))]
    send_to_store(recorded, track, runs_root is not None)
    return recorded


def claim_folders(runs: list[NamedRun], runs_root: Path | None, engine: str) -> dict[int, Path]:
    """Each run that keeps weights gets its folder before it trains, for its checkpoints; a killed run continues
    in its own. A folder that cannot be claimed (a full disk) costs the checkpoints, not the run."""
    folders: dict[int, Path] = {}
    if runs_root is None:
        return folders
    for i, run in enumerate(runs):
        if run.resume is not None and run.resume.folder is not None:
            folders[i] = run.resume.folder
        elif resolve_keep(run.config, run.weights)[0] != "none":
            try:
                folders[i] = claim(run, runs_root, engine)
            except OSError:
                continue
    return folders


def unclaim(folders: dict[int, Path]) -> None:
    """Folders claimed for runs that never started (refused): nothing of theirs was computed."""
    import shutil

    for folder in folders.values():
        if not (folder / RESUME_FILE).exists():
            shutil.rmtree(folder, ignore_errors=True)


def send_to_store(recorded: list[Recorded], track: str | None, saving: bool) -> None:
    from .mlflow_tracking import track as send, tracking_uri

    uri = tracking_uri(track)
    if uri is None or not saving:
        return
    saved = [r for r in recorded if not r.unsaved]
    for r, (line, sent) in zip(saved, send([r.summary for r in saved], uri)):
        r.tracked, r.sent = line, sent
    for r in recorded:
        if r.unsaved:
            r.tracked = f"{r.run.name}: not sent to MLflow (not saved locally)"


def superseded(run: NamedRun, runs_root: Path) -> tuple[str, str]:
    """A cancelled record that a saved run continued goes to the trash, the new record holding all it held: what
    to say, and the id that went ('' where none did)."""
    from .notebook import move_to_trash

    old = run.resume.supersedes if run.resume else None
    if old is None:
        return "", ""
    try:
        moved = move_to_trash([old.name], runs_root)
    except OSError as exc:
        return f"{run.name}: the cancelled record {old.name} it continues stays ({exc.strerror or exc})", ""
    if not moved:
        return "", ""
    return (f"{run.name}: continues {old.name}, which went to the trash (`digit-workbench runs restore {old.name}` "
            "brings it back)", old.name)


def record(run: NamedRun, result, runs_root: Path | None, folder: Path | None = None,
           checkpoints: Checkpoints | None = None, index: int = 0) -> Recorded:
    """A run's result saved under runs_root (or not, for None), in its claimed `folder` where it has one, with
    what it continues from (`checkpoints`); where it cannot be saved (a full disk, a runs directory that is a
    file), the summary stays in memory under an id of its own and says why."""
    if runs_root is None:
        return Recorded(run, summarize(result, run.name, run.preset, run.paper, edited=run.edited, tags=run.tags,
                                       note=run.note), result)
    try:
        keep, _ = resolve_keep(run.config, run.weights)
        state = checkpoints.final(index, result.status, keep) if checkpoints is not None else None
        summary = save_run(result, run.name, run.preset, run.paper, runs_root, run.edited, run.tags, run.note, keep,
                           folder, state, run.resume.continues if run.resume else None)
        said, gone = superseded(run, runs_root)
        failed = checkpoints.failed.get(index, "") if checkpoints is not None else ""
        return Recorded(run, summary, result, said="; ".join(line for line in (said, failed) if line),
                        superseded=gone)
    except RunNotSaved as exc:
        unsaved = str(exc)
    except Exception as exc:  # anything else in saving: the results are still shown, with the reason
        unsaved = f"{run.name}: not saved: {type(exc).__name__}: {exc}"
    summary = summarize(result, run.name, run.preset, run.paper, f"unsaved-{secrets.token_hex(3)}", run.edited,
                        run.tags, run.note)
    return Recorded(run, summary, result, unsaved)
