"""Where a round's training stands after an epoch, taken from either engine and given back to it: the weights,
Adam's two moments and step count, and the learning rate the next epoch uses. Every random draw of an epoch
comes from (seed, round, epoch) (paper/randomness.py), so with these a round continues exactly where it stopped."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from workbench.engine.base import kept_weights

MOMENTS = ("exp_avg", "exp_avg_sq")


@dataclass
class RoundState:
    """One round after epoch `epoch`, by the reference model's parameter names (float32, on the CPU)."""

    epoch: int
    steps: float  # Adam steps taken
    lr: float  # the learning rate of the next epoch, exactly as the schedule computed it
    weights: dict[str, np.ndarray]
    exp_avg: dict[str, np.ndarray]
    exp_avg_sq: dict[str, np.ndarray]


# after an epoch of one stack (or one round of the loop): (run index, round, its state) of each round it trained
OnStates = Callable[[list[tuple[int, int, RoundState]]], None]
Starts = dict[int, dict[int, RoundState]]  # run index -> round -> the state it continues from

TAKING_SHARE = 0.0025  # of a stack's training time, at most, spent taking its states off it


class Throttle:
    """Work kept to `share` of the time around it: after each turn, the next is due once the time since is
    1/share times what the turn cost."""

    def __init__(self, share: float):
        self.share, self.next_at = share, 0.0

    def due(self) -> bool:
        return time.monotonic() >= self.next_at

    def run(self, work: Callable[[], None]) -> None:
        started = time.monotonic()
        work()
        self.next_at = time.monotonic() + (time.monotonic() - started) / self.share


class Taking(Throttle):
    """When a stack's (or a loop round's) states are taken after an epoch: after the last epoch always (a done
    run continues from there), else within TAKING_SHARE of the training; a small network is taken every few
    seconds, a large one after every epoch."""

    def __init__(self, last_epoch: int):
        super().__init__(TAKING_SHARE)
        self.last_epoch = last_epoch

    def due(self, epoch: int) -> bool:
        return epoch == self.last_epoch or super().due()

    def take(self, on_states: OnStates, states: Callable[[], list]) -> None:
        self.run(lambda: on_states(states()))


# ------------------------------------------------------------------ the loop engine: a module and torch's Adam

def loop_state(model: torch.nn.Module, optimizer: torch.optim.Adam, epoch: int) -> RoundState:
    named = list(model.named_parameters())
    state = [optimizer.state[p] for _, p in named]
    return RoundState(epoch, float(state[0]["step"]), float(optimizer.param_groups[0]["lr"]), kept_weights(named),
                      *(kept_weights((name, s[m]) for (name, _), s in zip(named, state)) for m in MOMENTS))


@torch.no_grad()
def restore_loop(model: torch.nn.Module, optimizer: torch.optim.Adam, state: RoundState) -> None:
    """Before the schedule is made: it takes the group's rate as where it starts."""
    device = next(model.parameters()).device
    load_weights(model, state.weights)
    for name, p in model.named_parameters():
        optimizer.state[p] = {"step": torch.tensor(state.steps, dtype=torch.float32),
                              **{m: torch.from_numpy(getattr(state, m)[name]).to(device) for m in MOMENTS}}
    optimizer.param_groups[0]["lr"] = state.lr


# ------------------------------------------------------------------ the batched engine: one stack's flat buffers

def twin(view: torch.Tensor, flat: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """The view of `other` that holds what `view` holds of `flat` (Adam's moments lie as the weights do)."""
    return other.as_strided(view.shape, view.stride(), other.storage_offset() + view.storage_offset()
                            - flat.storage_offset())


def stack_state(net, optimizer, replica: int, names: list[str], epoch: int) -> RoundState:
    views = net.replica_parameters(replica)
    return RoundState(epoch, float(optimizer.steps), float(optimizer.rate_of(replica)),
                      kept_weights(zip(names, views)),
                      *(kept_weights((name, twin(v, net.flat, getattr(optimizer, m))) for name, v in zip(names, views))
                        for m in MOMENTS))


@torch.no_grad()
def restore_stack(net, optimizer, states: list[RoundState], names: list[str]) -> None:
    """Every replica's moments and rate, and the stack's shared step count (its replicas start at one epoch).
    The weights went in with the models the stack was built from."""
    first = states[0]
    if any((s.epoch, s.steps) != (first.epoch, first.steps) for s in states):
        raise ValueError("the rounds of one stack must start from one epoch")
    for k, state in enumerate(states):  # the replicas of one rate class scheduled their rate alike
        optimizer.set_rate(k, state.lr)
    if any(state.lr != optimizer.rate_of(k) for k, state in enumerate(states)):
        raise ValueError("the rounds of one rate class must start from one rate")
    for k, state in enumerate(states):
        for name, view in zip(names, net.replica_parameters(k)):
            for m in MOMENTS:
                twin(view, net.flat, getattr(optimizer, m)).copy_(torch.from_numpy(getattr(state, m)[name]))
    optimizer.steps.fill_(first.steps)


@torch.no_grad()
def load_weights(model: torch.nn.Module, weights: dict[str, np.ndarray]) -> torch.nn.Module:
    """The model with its parameters set from arrays by the reference model's names (on the model's device)."""
    for name, p in model.named_parameters():
        p.copy_(torch.from_numpy(weights[name]))
    return model
