"""A config to train under a name (NamedRun), and runs trained in one engine call with the one rule for cancelling
them (Group). Torch-free at import: the app's queue holds a Group from its first screen.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

from workbench.format import config_name, run_name
from workbench.paper.config import RunConfig, name_changes
from workbench.paper.presets import PaperScore, Preset
from workbench.records.checkpoint import Continuation


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
    weights: str | None = None  # the rounds whose networks the record keeps: all, first, none (None: records/weights.resolve_keep)
    resume: Continuation | None = field(default=None, repr=False)  # where it continues from (training/continuing.py)

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
        from workbench.engine import RoundResult

        history = [h for h in result.history if (h.round, h.epoch) in self.delivered[index]]
        last = {h.round: h for h in sorted(history, key=lambda h: h.epoch)}
        rounds = []
        for r in result.rounds:
            h = last.get(r.round)
            rounds.append(RoundResult(round=r.round, seed=r.seed, status="cancelled", epochs=h.epoch if h else 0,
                                      test_acc=h.test_acc if h else None, train_acc=h.train_acc if h else None,
                                      digit_acc=h.digit_acc if h else None, train_loss=h.train_loss if h else None))
        return dataclasses.replace(result, status="cancelled", reason="", rounds=rounds, history=history)


