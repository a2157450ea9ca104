"""Pruning, opt-in per spec (`pruner = "median"` or `"halving"`): each trial's validation score after every epoch
(the mean over its rounds) is reported to Optuna, and a trial the pruner gives up on stops its replicas while the
rest of its stack trains on. A pruned trial is never a stage's choice (storage.best_params takes finished trials
only), and the chosen configs' final measurements are never pruned."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .spec import Stage, SweepSpec


@dataclass
class Pruning:
    """The spec's pruner, set for its base's epochs."""

    kind: str
    epochs: int

    def pruner(self):
        import optuna

        if self.kind == "median":  # the early epochs' scores say little: no verdict in the first quarter
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, self.epochs // 4))
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, self.epochs // 8), reduction_factor=3)

    def watch(self, study, asked: list, configs: list) -> "Watch":
        return Watch(study, asked, [c.rounds for c in configs], [c.epochs for c in configs])


def pruning_for(spec: SweepSpec, stage: Stage) -> Pruning | None:
    """None when the spec does not prune; a stage's trials may change the epochs, so the rungs follow its base."""
    epochs = max([spec.base.epochs, *stage.grid.get("epochs", [])])
    return Pruning(spec.pruner, epochs) if spec.pruner != "none" else None


@dataclass
class Watch:
    """One batch's trials while they train: the engine hands it each round's epoch (with its validation score)
    and asks it, after each epoch, which runs to stop."""

    study: Any
    asked: list  # batch.Asked, by the engine's run index
    rounds: list[int]  # by run
    epochs: list[int]  # by run
    scores: dict[tuple[int, int], list[float]] = field(default_factory=dict)  # (run, epoch) -> its rounds' scores
    pruned: dict[int, int] = field(default_factory=dict)  # run -> the epoch after which it stopped

    def on_epoch(self, record) -> None:
        run, epoch = record.run, record.epoch
        if run in self.pruned or record.val_acc is None:
            return
        scores = self.scores.setdefault((run, epoch), [])
        scores.append(record.val_acc)
        if len(scores) < self.rounds[run]:
            return
        trial = self.asked[run].trial
        trial.report(sum(scores) / len(scores), epoch)
        del self.scores[(run, epoch)]
        if epoch < self.epochs[run] and trial.should_prune():  # after its last epoch there is nothing to save
            self.pruned[run] = epoch

    def stopped(self, run: int) -> bool:
        return run in self.pruned
