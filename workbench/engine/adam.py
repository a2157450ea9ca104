"""Adam over a stack's flat weights, one layer's stretch at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from workbench.engine.layers import SLOT_ALIGN, StackedLayer, aligned_buffer

if TYPE_CHECKING:
    from workbench.engine.stacked import StackedNet


class StackAdam:
    """torch's fused Adam kernel (the reference's settings: betas 0.9, 0.999, eps 1e-8, no weight decay) over
    a stack's flat weights, one layer's stretch at a time. Stepping a layer right after its backward finds its
    weights and gradients in cache (they were just read and written); one pass over every weight after the
    whole backward finds them evicted by the layers behind. Adam is element-wise and every stretch is whole
    64-byte lines (no scalar tail in the kernel), so the update is the one a single call would make. A small
    stack stays in cache anyway and steps in one call after the backward (one dispatch instead of one a layer).

    Replicas may differ in their rate and its decay (`lr`, `lr_decay` per replica): replicas of one (rate, decay)
    form a class, and the engine puts a class's replicas side by side (batched.py), so that in each weight tensor
    a class holds one run of slots. A run that starts and ends on a 64-byte line steps in place with its class's
    rate, in one call of its own. Where classes meet inside a line (slots that are not whole lines: some
    convolutions), the whole lines around them step once per class on copies of the stretch as it was, and each
    class takes its own elements from its copy. The kernel computes an element in its scalar tail differently
    (measured: 20,037 of 100,003 second moments differ after 20 steps), so no call may end inside a line."""

    betas, eps = (0.9, 0.999), 1e-8
    BY_LAYER_FROM = 1 << 20  # weights (4 MB; with gradients and moments, half this CPU's 32 MB L3)

    def __init__(self, net: StackedNet, lr: float | Sequence[float], lr_on_device: bool = False,
                 lr_decay: float | Sequence[float] = 1.0):
        rates = per_replica(lr, net.replicas)
        decays = per_replica(lr_decay, net.replicas)
        keys = list(dict.fromkeys(zip(rates, decays)))  # the classes, the first replica's first
        self.class_of = [keys.index(key) for key in zip(rates, decays)]
        self.lrs = [rate for rate, _ in keys]  # plain floats: decay() multiplies them as torch's ExponentialLR does
        self.decays = [decay for _, decay in keys]
        flat = net.flat
        # a CUDA graph reads the rates from these tensors at each replay, instead of keeping the captured values
        self.lr_tensors = [torch.tensor(rate, device=flat.device) for rate in self.lrs] if lr_on_device else None
        self.weights, self.grads = flat, flat.grad
        self.exp_avg = aligned_buffer(flat.numel(), flat.device).zero_()
        self.exp_avg_sq = aligned_buffer(flat.numel(), flat.device).zero_()
        self.steps = torch.zeros((), dtype=torch.float32, device=flat.device)  # as torch keeps it when fused
        self.by_layer = flat.numel() >= self.BY_LAYER_FROM
        self.segments = RateSegments(net, self.class_of) if len(keys) > 1 else None
        self.calls: dict[tuple[int, int], tuple[list, list[Segment]]] = {}

    @property
    def lr(self) -> float:
        """The first replica's rate (every replica's, in a stack of one class)."""
        return self.lrs[0]

    def rate_of(self, replica: int) -> float:
        return self.lrs[self.class_of[replica]]

    def set_rate(self, replica: int, value: float) -> None:
        c = self.class_of[replica]
        self.lrs[c] = value
        if self.lr_tensors is not None:
            self.lr_tensors[c].fill_(value)

    def begin_step(self) -> None:
        self.steps.add_(1)

    def step_layer(self, layer: StackedLayer) -> None:
        self.step_span(*layer.span)

    def step_all(self) -> None:
        self.step_span(0, self.weights.numel())

    def step_span(self, start: int, end: int) -> None:
        if self.segments is None:
            self.kernel(*([t] for t in self.buffers(start, end)), 0)
            return
        # planned at the stretch's first step, which is eager: a CUDA graph captured later replays these tensors
        if (start, end) not in self.calls:
            self.calls[(start, end)] = self.plan_calls(start, end)
        in_place, mixed = self.calls[(start, end)]
        for c, lists in in_place:
            self.kernel(*lists, c)
        for segment in mixed:
            self.step_mixed(segment)

    def plan_calls(self, start: int, end: int) -> tuple[list, list[Segment]]:
        """Each class's whole-line runs as one kernel call over the list of them (the kernel steps each tensor of
        a list as a call of its own would), and the segments where classes meet."""
        runs: dict[int, list[tuple[torch.Tensor, ...]]] = {}
        mixed = []
        for segment in self.segments.plan(start, end):
            if len(segment.classes) == 1:
                runs.setdefault(segment.classes[0], []).append(self.buffers(segment.start, segment.end))
            else:
                mixed.append(segment)
        return [(c, [list(t) for t in zip(*views)]) for c, views in runs.items()], mixed

    def buffers(self, start: int, end: int) -> tuple[torch.Tensor, ...]:
        part = slice(start, end)
        return self.weights[part], self.grads[part], self.exp_avg[part], self.exp_avg_sq[part]

    def step_mixed(self, segment: Segment) -> None:
        """Whole lines where classes meet: the first class in place, each other on a copy of the lines as they
        were, from which it takes its own elements."""
        weights, grads, exp_avg, exp_avg_sq = self.buffers(segment.start, segment.end)
        for kept, now in zip(segment.before, (weights, exp_avg, exp_avg_sq)):
            kept.copy_(now)
        self.kernel([weights], [grads], [exp_avg], [exp_avg_sq], segment.classes[0])
        for c, index in zip(segment.classes[1:], segment.indices):
            copies = segment.before if c == segment.classes[-1] else [
                mine.copy_(kept) for mine, kept in zip(segment.copy, segment.before)]
            self.kernel([copies[0]], [grads], [copies[1]], [copies[2]], c)
            weights.index_copy_(0, index, copies[0].index_select(0, index))

    def kernel(self, weights: list, grads: list, exp_avg: list, exp_avg_sq: list, c: int) -> None:
        torch._fused_adam_(weights, grads, exp_avg, exp_avg_sq, [], [self.steps] * len(weights),
                           lr=self.lrs[c] if self.lr_tensors is None else self.lr_tensors[c],
                           beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
                           amsgrad=False, maximize=False)

    def decay(self, gamma: float | None = None) -> None:
        """Each class's rate times its own decay (or every rate times `gamma`), after an epoch."""
        for c in range(len(self.lrs)):
            self.lrs[c] = self.lrs[c] * (self.decays[c] if gamma is None else gamma)
            if self.lr_tensors is not None:
                self.lr_tensors[c].fill_(self.lrs[c])


def per_replica(value: float | Sequence[float], replicas: int) -> list[float]:
    values = [float(value)] * replicas if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != replicas:
        raise ValueError(f"{len(values)} rates for a stack of {replicas} replicas")
    return values


@dataclass
class Segment:
    """Whole lines [start, end) of the flat weights and the rate classes whose elements lie there: one class
    steps in place; several step as StackAdam.step_mixed does, with these positions (of each class after the
    first, within the segment) and these buffers."""

    start: int
    end: int
    classes: list[int]
    indices: list[torch.Tensor] = field(default_factory=list)
    before: list[torch.Tensor] = field(default_factory=list)
    copy: list[torch.Tensor] = field(default_factory=list)


class RateSegments:
    """Each rate class's elements in the flat weights, and the segments a stretch of them steps in."""

    def __init__(self, net: StackedNet, class_of: list[int]):
        flat = net.flat
        owner = torch.full((flat.numel(),), -1, dtype=torch.int16)  # on the host: only read to plan the calls
        for r, c in enumerate(class_of):
            for view in net.replica_parameters(r):
                owner.as_strided(view.shape, view.stride(), view.storage_offset() - flat.storage_offset()).fill_(c)
        owner = owner.numpy()
        # padding (after a linear slot, or at a tensor's end) goes with the slot before it: zeros, whatever the rate
        filled = np.maximum.accumulate(np.where(owner >= 0, np.arange(owner.size), 0))
        self.owner = owner[filled]
        self.device = flat.device

    def plan(self, start: int, end: int) -> list[Segment]:
        """The segments of the stretch [start, end): whole-line runs of one class, and whole lines where classes
        meet with the positions and buffers StackAdam.step_mixed needs."""
        owner = self.owner[start:end]
        changes = (np.flatnonzero(owner[1:] != owner[:-1]) + 1).tolist()
        cuts = [0] + [k for k in changes if (start + k) % SLOT_ALIGN == 0] + [end - start]
        segments = []
        for a, b in zip(cuts, cuts[1:]):
            classes = list(dict.fromkeys(owner[a:b].tolist()))
            segment = Segment(start + a, start + b, classes)
            if len(classes) > 1:
                segment.indices = [torch.from_numpy(np.flatnonzero(owner[a:b] == c)).to(self.device)
                                   for c in classes[1:]]
                segment.before = [aligned_buffer(b - a, self.device) for _ in range(3)]
                segment.copy = [aligned_buffer(b - a, self.device) for _ in range(3)] if len(classes) > 2 else []
            segments.append(segment)
        return segments
