"""Pruning, opt-in per spec (`pruner = "median"` or `"halving"`): each trial's validation score after every epoch
(the mean over its rounds) is reported to Optuna, and a trial the pruner gives up on stops its replicas while the
rest of its stack trains on. A pruned trial is never a stage's choice (storage.best_params takes finished trials
only), and the chosen configs' final measurements are never pruned."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.sweep.spec import Stage, SweepSpec


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
        return Watch(study, asked, [c.epochs for c in configs])


def pruning_for(spec: SweepSpec, stage: Stage) -> Pruning | None:
    """None when the spec does not prune; a stage's trials may change the epochs, so the rungs follow its base."""
    epochs = max([spec.base.epochs, *stage.grid.get("epochs", [])])
    return Pruning(spec.pruner, epochs) if spec.pruner != "none" else None


@dataclass
class Watch:
    """One batch's trials while they train: it hears each trial's epoch once all its rounds have done it (with
    their validation scores; batch.Progress gathers them), and the engine asks it, after each epoch, which runs to
    stop."""

    study: Any
    asked: list  # batch.Asked, by the engine's run index
    epochs: list[int]  # by run
    pruned: dict[int, int] = field(default_factory=dict)  # run -> the epoch after which it stopped

    def epoch_done(self, run: int, epoch: int, records: list) -> None:
        """`records`: the epoch of each of the trial's rounds."""
        if run in self.pruned or records[0].val_acc is None:
            return
        trial = self.asked[run].trial
        trial.report(sum(r.val_acc for r in records) / len(records), epoch)
        if epoch < self.epochs[run] and trial.should_prune():  # after its last epoch there is nothing to save
            self.pruned[run] = epoch

    def stopped(self, run: int) -> bool:
        return run in self.pruned
