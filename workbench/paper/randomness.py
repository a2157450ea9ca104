"""Every random stream of the workbench, each derived from (seed, round, name) alone: a round's pairs (drawn by
data.round_pairs from the generators here), their re-pairing, initial weights, batch order and dropout draws;
and the fixed split of the embedded digits. Nothing here depends on what else trains: a replica's draws are its
own, so a config's numbers do not move with its stack-mates, the worker count or the caller. (The strip plots'
jitter is no draw of a run: analysis.strip_jitter, torch-free.)

Dropout draws. Each step of each round draws D = B * sum(units) 16-bit integers, laid out in the order the
reference model calls its dropout layers (left subnet, right subnet, combiner; `models.dropout_units`), each
layer's block as (pair, unit) with room for the full batch B (a short last batch uses the first pairs). They
come from one generator per (seed, round, epoch), drawn BLOCK_STEPS steps at a time as 64-bit words (four
draws a word): the loop engine takes row 0 of a one-replica stream, the batched engine all rows at once, and
both draw the same words in the same calls, so they see the same bits on any device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from workbench.paper.config import RunConfig
from workbench.paper.models import Dropout, build_model, dropout_units, mask_from_draws

BLOCK_STEPS = 16  # steps drawn per generator call: few calls, and a few MB at most for a large stack
EMBEDDED_SPLIT_SEED = 20190501  # the embedded digits' train/test split: one fixed draw for every run

# The names of a round's streams: a new kind of draw gets a new name here, never a reused one.
TRAIN_PAIRS, TEST_PAIRS, REPAIR, WEIGHTS, BATCHES, DROPOUT, SHIFTS, TURNS = (
    "train-pairs", "test-pairs", "repair", "weights", "batches", "dropout", "shifts", "turns")


def derive_seed(seed: int, *stream: object) -> int:
    """A 63-bit seed for one named stream (round, purpose) of a run's master seed."""
    digest = hashlib.sha256(repr((seed, *stream)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, round_index: int, name: str, *more: object) -> torch.Generator:
    """A CPU generator for one named stream of a round (more: the epoch, for the streams drawn anew each epoch)."""
    return torch.Generator().manual_seed(derive_seed(seed, round_index, name, *more))


def embedded_split_generator() -> torch.Generator:
    return torch.Generator().manual_seed(EMBEDDED_SPLIT_SEED)


def weights_seed(seed: int, round_index: int) -> int:
    """The seed of a replica's initial weights; a round's record keeps it as the round's seed."""
    return derive_seed(seed, round_index, WEIGHTS)


def init_model(config: RunConfig, round_index: int) -> nn.Module:
    """The round's initial weights, fixed by (seed, round): both engines start from these."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(weights_seed(config.seed, round_index))
        return build_model(config)


def batch_order(config: RunConfig, round_index: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=generator(config.seed, round_index, BATCHES, epoch))


def augment_draws(config: RunConfig, round_index: int, epoch: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An epoch's moves of the round's n training pairs: whole-pixel shifts (n, 2 digits, dx dy) in
    [-shift, shift] and turns (n, 2) in degrees in [-rotate, rotate], each from its own stream."""
    shifts = torch.randint(-config.shift, config.shift + 1, (n, 2, 2),
                           generator=generator(config.seed, round_index, SHIFTS, epoch))
    turns = (torch.rand((n, 2), generator=generator(config.seed, round_index, TURNS, epoch), dtype=torch.float64)
             * 2 - 1) * config.rotate
    return shifts, turns


@dataclass(frozen=True)
class DropoutLayout:
    """Where each dropout call of a step finds its draws: `units` per pair, in call order, for batches of B."""

    units: tuple[int, ...]
    batch: int

    @classmethod
    def of(cls, model: nn.Module, batch: int) -> DropoutLayout:
        return cls(tuple(dropout_units(model)), batch)

    @property
    def per_step(self) -> int:
        return self.batch * sum(self.units)

    def offset(self, call: int) -> int:
        return self.batch * sum(self.units[:call])


class DropoutStream:
    """The dropout draws of R replicas, replica k from its own generator seeded by (seed_k, round_k, epoch)."""

    def __init__(self, rounds: list[tuple[int, int]], layout: DropoutLayout, device: torch.device):
        self.rounds, self.layout, self.device = rounds, layout, device
        self.words = -(-layout.per_step // 4)
        self.generators = [torch.Generator(device) for _ in rounds]
        self.block = torch.empty(len(rounds), BLOCK_STEPS, self.words, dtype=torch.int64, device=device)

    def start_epoch(self, epoch: int) -> None:
        for gen, (seed, round_index) in zip(self.generators, self.rounds):
            gen.manual_seed(derive_seed(seed, round_index, DROPOUT, epoch))

    def step(self, step: int) -> torch.Tensor | None:
        """Step `step` (0-based, within the epoch) of every replica: int16 (R, D), uniform on [-2^15, 2^15);
        None when dropout is off."""
        if not self.words:
            return None
        t = step % BLOCK_STEPS
        if t == 0:
            for k, gen in enumerate(self.generators):
                self.block[k].random_(-2 ** 63, None, generator=gen)
        return self.block[:, t].view(torch.int16)[:, :self.layout.per_step]

    def epoch_draws(self, steps: int) -> torch.Tensor | None:
        """Steps 0..steps-1 of the epoch at once, (R, steps, D): the draws step() gives, a block at a time;
        None when dropout is off."""
        if not self.words:
            return None
        out = torch.empty(len(self.rounds), steps, self.layout.per_step, dtype=torch.int16, device=self.device)
        for start in range(0, steps, BLOCK_STEPS):
            self.step(start)  # draws the block
            k = min(BLOCK_STEPS, steps - start)
            out[:, start:start + k] = self.block[:, :k].view(torch.int16)[:, :, :self.layout.per_step]
        return out


class StepDraws:
    """One replica's draws of one step, handed to the reference model's Dropout layers in their call order."""

    def __init__(self, layout: DropoutLayout):
        self.layout = layout
        self.draws: torch.Tensor | None = None
        self.position = 0

    def start(self, draws: torch.Tensor) -> None:
        self.draws, self.position = draws, 0

    def mask(self, x: torch.Tensor, p: float) -> torch.Tensor:
        pairs, units = x.shape[0], x[0].numel()
        block = self.draws[self.position:self.position + self.layout.batch * units]
        self.position += self.layout.batch * units
        return mask_from_draws(block.view(self.layout.batch, units)[:pairs].reshape(x.shape), p)


def attach_draws(model: nn.Module, draws: StepDraws | None) -> None:
    for module in model.modules():
        if isinstance(module, Dropout):
            module.draws = draws
