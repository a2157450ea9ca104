"""The batched engine: all rounds of one or more configs that share an architecture, trained as one stacked model.

Each replica (config, round) keeps its own pair sets, batch order, initial weights and dropout draws, all from
(seed, round) (paper/randomness.py). The loss is summed over replicas, so each replica's gradient is its own; Adam is
element-wise, so one Adam over the stacked weights is R independent Adams (stacked.py's StackAdam).
"""

from __future__ import annotations

import math
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from workbench.engine.adam import StackAdam
from workbench.engine.base import (CancelFlag, EpochRecord, NeverCancel, OnEpoch, RoundResult, RunResult, StopRun,
                                   device_label, digit_figure, flag_divergence, kept_weights, library_versions,
                                   predictions_of, resolve_device)
from workbench.engine.cuda_graph import EpochProgram, StepGraph
from workbench.engine.loss import loss_weights, replica_losses, step_scales
from workbench.engine.stacked import StackedNet, accuracies, evaluate_stack, stack_outputs, stack_pairs, train_step
from workbench.engine.state import OnStates, Starts, Taking, load_weights, restore_stack, stack_state
from workbench.paper.config import RunConfig
from workbench.paper.data import DigitSource, PairSet, augmented, repaired, round_pairs
from workbench.paper.randomness import DropoutStream, batch_order, init_model, weights_seed
from workbench.paper.verdict import says_first_le_second

INIT_LOCK = threading.Lock()  # initialisation draws from the global generator: one stack at a time

Replica = tuple[int, RunConfig, int]  # (index into the stack's runs, config, round)


@contextmanager
def one_thread():
    """A stack trains on one thread: with two, some products split their sums by size and round differently,
    so a replica's numbers would depend on the thread count. Stacks run side by side instead (scheduler.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_stack(runs: list[tuple[int, RunConfig]], source: DigitSource, on_epoch: OnEpoch | None = None,
              cancel: CancelFlag | None = None, validation: int = 0, rounds: Sequence[int] | None = None,
              start: Starts | None = None, on_states: OnStates | None = None,
              stop_run: StopRun | None = None) -> list[RunResult]:
    """Train every round (or the given `rounds`) of every (run index, config) in one stack; the configs differ
    at most in config.REPLICA_FIELDS. A round's numbers do not depend on which rounds train beside it. `start` holds, by
    run index and round, where rounds continue from (all of the stack's from one epoch); `on_states` sees each
    round's state after each epoch. With `stop_run`, every epoch also scores the validation pairs (in the records'
    val_acc), and a run it names after an epoch stops there: its rounds leave the stack, the rest train on."""
    with one_thread():
        return _run_stack(runs, source, on_epoch, cancel, validation, rounds, start or {}, on_states, stop_run)


def _run_stack(runs, source, on_epoch, cancel, validation, rounds, start, on_states, stop_run) -> list[RunResult]:
    cancel = cancel or NeverCancel()
    first = runs[0][1]
    assert all(c.architecture_key() == first.architecture_key() for _, c in runs), "one architecture per stack"
    device = resolve_device(first.device)
    started, clock = time.time(), time.perf_counter()
    rounds = rounds if rounds is not None else range(first.rounds)
    replicas: list[Replica] = [(i, config, r) for i, (_, config) in enumerate(runs) for r in rounds]
    # the replicas of one learning rate and decay side by side: Adam then steps each rate's slots in one call
    rates = list(dict.fromkeys(c.rate_class for _, c, _ in replicas))
    replicas.sort(key=lambda rep: rates.index(rep[1].rate_class))

    report = StackReport(runs, replicas, on_epoch)
    states = [start.get(runs[i][0], {}).get(r) for i, _, r in replicas]
    begun = {s.epoch if s is not None else 0 for s in states}
    if len(begun) > 1:
        raise ValueError("the rounds of one stack must start from one epoch")  # run_configs plans them so
    begun = begun.pop()
    stack = Stack(replicas, *replica_pairs(replicas, source, validation, device), device)
    stack.build(list(range(len(replicas))), states)

    cancelled, outputs, val_acc, taking = False, None, None, Taking(first.epochs)
    per_epoch_val = stop_run is not None and stack.val is not None
    for epoch in range(begun + 1, first.epochs + 1):
        epoch_started = time.perf_counter()
        rates = stack.trainer.rates()
        figures = stack.trainer.train_epoch(epoch, stack.train, cancel)
        if figures is None:
            cancelled = True
            break
        outputs = stack_outputs(stack.net, stack.test)  # the last epoch's are also the round's predictions
        val_acc = evaluate_stack(stack.net, stack.val)[0] if per_epoch_val else None
        report.epoch(epoch, rates, figures, *accuracies(*outputs, stack.test), time.perf_counter() - epoch_started,
                     val_acc)
        if on_states is not None and taking.due(epoch):
            taking.take(on_states, lambda: report.states(stack, epoch))
        if stop_run is not None and report.stop(stop_run, epoch):
            if not report.slots:
                break
            stack.build(report.slots, [stack.state(k, epoch) for k in report.slots])
            outputs = val_acc = None  # by the slots of the stack before
        if not report.any_alive():
            break
    if not cancelled and report.slots:
        outputs = outputs or stack_outputs(stack.net, stack.test)  # a round resumed at its last epoch trains no more
        report.flag_divergence()
        if stack.val is not None:  # a sweep trial: scored on validation pairs, no predictions needed
            report.validation(val_acc if val_acc is not None else evaluate_stack(stack.net, stack.val)[0])
        else:
            report.predictions(*outputs, stack.test)
            report.keep_weights(stack)
    return report.results(cancelled, source.name, device_label(device), time.perf_counter() - clock, started)


class Stack:
    """What trains: the stacked network of some of a stack's replicas (by index), its trainer and its pairs.
    Built again from the replicas' states when some of them stop: a round's numbers do not depend on its
    stack-mates, nor on a stack built anew from its state."""

    def __init__(self, replicas: list[Replica], train: PairSet, test: PairSet, val: PairSet | None,
                 device: torch.device):
        self.replicas, self.all_pairs, self.device = replicas, (train, test, val), device
        self.train = self.test = self.val = None
        self.net: StackedNet | None = None
        self.trainer: EpochTrainer | None = None
        self.names: list[str] = []
        self.slots: list[int] = []

    def build(self, slots: list[int], states: list) -> None:
        """A stack of the replicas `slots`, each from its state (None: its first epoch)."""
        # One replica trains beside a copy of itself, whose figures are dropped: at one slot the kernels take other
        # paths (a plain matrix product instead of a batched one) that round differently.
        trained_slots, trained_states = (slots * 2, states * 2) if len(slots) == 1 else (slots, states)
        trained = [self.replicas[k] for k in trained_slots]
        pick = torch.tensor(trained_slots, device=self.device)
        self.train, self.test, self.val = (None if p is None else PairSet(p.input[pick], p.classes[pick],
                                                                          p.target[pick]) for p in self.all_pairs)
        with INIT_LOCK:
            models = [init_model(c, r) if s is None else load_weights(init_model(c, r), s.weights)
                      for (_, c, r), s in zip(trained, trained_states)]
        self.names = [name for name, _ in models[0].named_parameters()]
        self.net = StackedNet(models, self.device, trained[0][1].batch_size)
        self.trainer = EpochTrainer(self.net, trained, self.device)
        self.slots = list(slots)
        if any(s is not None for s in trained_states):
            restore_stack(self.net, self.trainer.optimizer, trained_states, self.names)

    def state(self, k: int, epoch: int):
        """Replica k's state after `epoch`, as this stack holds it."""
        return stack_state(self.net, self.trainer.optimizer, self.slots.index(k), self.names, epoch)


def replica_pairs(replicas: list[Replica], source: DigitSource, validation: int, device: torch.device):
    """Train, test and validation (or None) pairs of every replica, stacked (R, n, ...); one draw per (seed, round)."""
    per_round: dict[tuple[int, int], tuple[PairSet, ...]] = {}
    for _, config, r in replicas:
        if (config.seed, r) not in per_round:
            per_round[(config.seed, r)] = round_pairs(source, config.pairs, config.seed, r, validation)
    sets = [stack_pairs([per_round[(c.seed, r)][k] for _, c, r in replicas], device)
            for k in range(3 if validation else 2)]
    return sets[0], sets[1], (sets[2] if validation else None)


class EpochTrainer:
    """The hot loop: one epoch of Adam steps of the whole stack, batch by batch in each replica's own order."""

    def __init__(self, net: StackedNet, replicas: list[Replica], device: torch.device):
        self.net, self.replicas = net, replicas
        self.configs = [c for _, c, _ in replicas]
        self.config = self.configs[0]  # pairs, batch size and epochs, which every replica of a stack shares
        self.stream = DropoutStream([(c.seed, r) for _, c, r in replicas], net.dropout_layout, device)
        self.w_bce, self.w_aux = loss_weights(self.configs, device)
        self.any_aux = any(c.aux_loss for c in self.configs)
        self.scales: dict[int, tuple] = {}  # batch size -> step_scales
        self.graphs = device.type == "cuda" and os.environ.get("DIGIT_WORKBENCH_CUDA_GRAPHS", "1") != "0"
        self.whole_epochs = self.graphs  # from the second epoch, its full steps as one program (one CUDA graph)
        self.program: EpochProgram | None = None
        self.optimizer = StackAdam(net, [c.lr for c in self.configs], lr_on_device=self.graphs,
                                   lr_decay=[c.lr_decay for c in self.configs])
        self.replica_index = torch.arange(len(self.configs), device=device).unsqueeze(1)

    def rates(self) -> list[float]:
        """Each slot's learning rate for the coming epoch."""
        return [self.optimizer.rate_of(k) for k in range(len(self.configs))]

    def scales_for(self, batch: int) -> tuple:
        if batch not in self.scales:
            self.scales[batch] = step_scales(self.w_bce, self.w_aux, self.any_aux, batch)
        return self.scales[batch]

    def train_full_steps(self, epoch, x, target, onehot, out_epoch, digits_epoch) -> int:
        """The epoch's full batches as one program (captured as one CUDA graph on first use, on a GPU);
        returns how many steps it trained: 0 when it cannot be captured (the epoch then goes step by step)."""
        steps, batch = self.config.pairs // self.config.batch_size, self.config.batch_size
        used = steps * batch
        inputs = (x[:, :used], target[:, :used], onehot[:, :used] if self.any_aux else None,
                  self.stream.epoch_draws(steps))
        if self.program is None:
            self.program = EpochProgram(self.net, self.optimizer, inputs, steps, batch, self.scales_for(batch),
                                        keep_digits=self.any_aux)
            if self.graphs and not self.program.capture():
                self.whole_epochs, self.program = False, None
                self.stream.start_epoch(epoch)  # the steps draw these again, one by one
                return 0
        out, digits = self.program.run(inputs)
        out_epoch[:, :used] = out
        if self.any_aux:
            digits_epoch[:, :used] = digits
        return steps

    def train_epoch(self, epoch: int, train: PairSet, cancel: CancelFlag) -> EpochTrained | None:
        """Trains one epoch; None when cancelled part-way."""
        n, batch, R = self.config.pairs, self.config.batch_size, len(self.configs)
        device = train.target.device
        if any(c.repair for c in self.configs):  # each replica that re-pairs draws its own new pairs, as the loop does
            train = stack_pairs([repaired(PairSet(train.input[k], train.classes[k], train.target[k]), c.seed, r, epoch)
                                 if c.repair else PairSet(train.input[k], train.classes[k], train.target[k])
                                 for k, (_, c, r) in enumerate(self.replicas)], device)
        if any(c.shift or c.rotate for c in self.configs):  # each replica moves its own digits, as the loop does
            train = stack_pairs([augmented(PairSet(train.input[k], train.classes[k], train.target[k]), c, r, epoch)
                                 for k, (_, c, r) in enumerate(self.replicas)], device)
        order = torch.stack([batch_order(c, r, epoch, n) for _, c, r in self.replicas]).to(device)
        x = train.input[self.replica_index, order]  # (R, n, 2, 14, 14) in each replica's order
        target, classes = train.target[self.replica_index, order], train.classes[self.replica_index, order]
        onehot = F.one_hot(classes, 10).to(x.dtype) if self.any_aux else None
        out_epoch = torch.zeros(R, n, device=device)  # logits as trained: the epoch's loss and train accuracy
        digits_epoch = torch.zeros(R, n, 2, 10, device=device) if self.any_aux else None
        self.stream.start_epoch(epoch)
        first = 0  # the first step left to train one by one
        if self.whole_epochs and epoch > 1 and n >= batch:
            if cancel.is_set():
                return None
            first = self.train_full_steps(epoch, x, target, onehot, out_epoch, digits_epoch)
        step_graph = None
        for step, start in enumerate(range(first * batch, n, batch), start=first):
            if cancel.is_set():
                return None
            part = slice(start, start + batch)
            b = min(batch, n - start)
            inputs = (x[:, part], target[:, part], onehot[:, part] if self.any_aux else None, self.stream.step(step))
            if self.graphs and step_graph is None and b == batch and (epoch > 1 or step >= 3):
                step_graph = StepGraph.capture(self.net, self.optimizer, inputs, self.scales_for(b))
                self.graphs = step_graph is not None  # a step that cannot be captured trains as it is
            if step_graph is not None and b == batch:
                out, digits = step_graph.replay(inputs)
            else:
                out, digits = train_step(self.net, self.optimizer, *inputs, *self.scales_for(b))
            out_epoch[:, part] = out
            if self.any_aux:
                digits_epoch[:, part] = digits
        self.optimizer.decay()
        losses = replica_losses(out_epoch, digits_epoch, target, classes, self.w_bce, self.w_aux, batch)
        accuracy = (says_first_le_second(out_epoch).float() == target).float().mean(1)
        return EpochTrained(losses.tolist(), accuracy.tolist())


@dataclass
class EpochTrained:
    """Per replica: the epoch's mean training loss and its accuracy on the batches as they were trained."""

    losses: list[float]
    accuracies: list[float]


class StackReport:
    """Turns a stack's per-replica figures into each run's epoch records and, at the end, its RunResult."""

    def __init__(self, runs: list[tuple[int, RunConfig]], replicas: list[Replica], on_epoch: OnEpoch | None):
        self.runs, self.replicas, self.on_epoch = runs, replicas, on_epoch
        self.rounds = [RoundResult(round=r, seed=weights_seed(c.seed, r), status="done")
                       for _, c, r in replicas]
        self.histories: list[list[EpochRecord]] = [[] for _ in runs]
        self.alive = [True] * len(replicas)  # a replica whose loss went non-finite trains on, unreported
        self.slots = list(range(len(replicas)))  # the replica at each slot of the stack as it trains now

    def any_alive(self) -> bool:
        return any(self.alive[k] for k in self.slots)

    def epoch(self, epoch: int, rates: list[float], trained: EpochTrained, test_acc: torch.Tensor,
              digit_acc: torch.Tensor | None, seconds: float, val_acc: torch.Tensor | None = None) -> None:
        test = test_acc.tolist()
        digits = digit_acc.tolist() if digit_acc is not None else [None] * len(self.slots)
        val = val_acc.tolist() if val_acc is not None else [None] * len(self.slots)
        for slot, k in enumerate(self.slots):
            i, config, r = self.replicas[k]
            if not self.alive[k]:
                continue
            loss, res, digit_acc = trained.losses[slot], self.rounds[k], digit_figure(config, digits[slot])
            if not math.isfinite(loss):
                self.alive[k] = False
                res.status, res.reason = "failed", f"round {r}: loss became {loss} in epoch {epoch}"
                continue
            rec = EpochRecord(self.runs[i][0], r, epoch, loss, trained.accuracies[slot], test[slot], digit_acc,
                              rates[slot], seconds, val[slot])
            self.histories[i].append(rec)
            res.epochs, res.train_loss, res.train_acc, res.test_acc, res.digit_acc = (
                epoch, loss, trained.accuracies[slot], test[slot], digit_acc)
            if self.on_epoch:
                self.on_epoch(rec)

    def stop(self, stop_run: StopRun, epoch: int) -> bool:
        """Takes the rounds of the runs stop_run names out of the stack, pruned after `epoch`; True if any."""
        gone = [k for k in self.slots if stop_run(self.runs[self.replicas[k][0]][0])]
        for k in gone:
            res = self.rounds[k]
            if res.status == "done":
                res.status, res.reason = "pruned", f"pruned after epoch {epoch}"
        self.slots = [k for k in self.slots if k not in gone]
        return bool(gone)

    def flag_divergence(self) -> None:
        for (_, config, _), res in zip(self.replicas, self.rounds):
            flag_divergence(config, res)

    def predictions(self, logits: torch.Tensor, digit_logits: torch.Tensor | None, test: PairSet) -> None:
        for slot, k in enumerate(self.slots):
            config, res = self.replicas[k][1], self.rounds[k]
            if res.status == "done":
                res.predictions = predictions_of(logits[slot], None if digit_logits is None else digit_logits[slot],
                                                 test.input[slot], test.target[slot], test.classes[slot],
                                                 config.aux_loss)

    def states(self, stack: Stack, epoch: int) -> list:
        """(run index, round, state) of each replica still training, as it stands after `epoch`."""
        return [(self.runs[self.replicas[k][0]][0], self.replicas[k][2], stack.state(k, epoch))
                for k in self.slots if self.alive[k]]

    def keep_weights(self, stack: Stack) -> None:
        """Each finished replica's network after its last epoch, named as the reference model names it."""
        for slot, k in enumerate(self.slots):
            if self.rounds[k].status == "done":
                self.rounds[k].weights = kept_weights(zip(stack.names, stack.net.replica_parameters(slot)))

    def validation(self, val_acc: torch.Tensor) -> None:
        for k, acc in zip(self.slots, val_acc.tolist()):
            if self.rounds[k].status == "done":
                self.rounds[k].val_acc = acc

    def results(self, cancelled: bool, data_source: str, device: str, wall: float, started: float) -> list[RunResult]:
        out = []
        for i, (_, config) in enumerate(self.runs):
            mine = [self.rounds[k] for k, rep in enumerate(self.replicas) if rep[0] == i]
            failed = [rr for rr in mine if rr.status == "failed"]
            pruned = [rr for rr in mine if rr.status == "pruned"]
            if pruned and not failed:
                status, reason = "pruned", pruned[0].reason
            elif cancelled:
                status, reason = "cancelled", ""
                for rr in mine:
                    if rr.status == "done":
                        rr.status = "cancelled"
            elif failed:
                status, reason = "failed", "; ".join(rr.reason for rr in failed)
            else:
                status, reason = "done", ""
            out.append(RunResult(
                status=status, reason=reason, config=config, rounds=mine, history=self.histories[i],
                data_source=data_source, device=device, engine="batched", seed=config.seed,
                wall_time=wall / len(self.runs), versions=library_versions(), started_at=started))
        return out
