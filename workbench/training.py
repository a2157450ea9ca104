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
            return True

    def _stop_if_only_cancelled_left(self) -> None:
        total = [run.config.rounds * run.config.epochs for run in self.runs]
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
    try:
        digits = source() if callable(source) else source
        source_name = digits.name
        why = refusal(configs, digits)
        if why:
            raise EngineError(why)
        results = run_configs(configs, digits, on_epoch=report, cancel=group, engine=engine)
    except Exception as exc:  # no digits, no device, too big
        if refuse:
            raise
        reason = str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
        results = [failed_result(config, source_name, engine, reason) for config in configs]
    # a run the user cancelled keeps what was reported before the cancel, never epochs trained unseen after it
    results = [group.as_cancelled(i, r) if i in group.cancelled else r for i, r in enumerate(results)]
    recorded = [record(run, result, runs_root) for run, result in zip(group.runs, results)]
    send_to_store(recorded, track, runs_root is not None)
    return recorded


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


def record(run: NamedRun, result, runs_root: Path | None) -> Recorded:
    """A run's result saved under runs_root (or not, for None); where it cannot be saved (a full disk, a runs
    directory that is a file), the summary stays in memory under an id of its own and says why."""
    if runs_root is None:
        return Recorded(run, summarize(result, run.name, run.preset, run.paper, edited=run.edited, tags=run.tags,
                                       note=run.note), result)
    try:
        keep, _ = resolve_keep(run.config, run.weights)
        return Recorded(run, save_run(result, run.name, run.preset, run.paper, runs_root, run.edited, run.tags,
                                      run.note, keep), result)
    except RunNotSaved as exc:
        unsaved = str(exc)
    except Exception as exc:  # anything else in saving: the results are still shown, with the reason
        unsaved = f"{run.name}: not saved: {type(exc).__name__}: {exc}"
    summary = summarize(result, run.name, run.preset, run.paper, f"unsaved-{secrets.token_hex(3)}", run.edited,
                        run.tags, run.note)
    return Recorded(run, summary, result, unsaved)
