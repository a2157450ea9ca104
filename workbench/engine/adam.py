"""Adam over a stack's flat weights, one layer's stretch at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from .layers import StackedLayer, aligned_buffer

if TYPE_CHECKING:
    from .stacked import StackedNet


class StackAdam:
    """torch's fused Adam kernel (the reference's settings: betas 0.9, 0.999, eps 1e-8, no weight decay) over
    a stack's flat weights, one layer's stretch at a time. Stepping a layer right after its backward finds its
    weights and gradients in cache (they were just read and written); one pass over every weight after the
    whole backward finds them evicted by the layers behind. Adam is element-wise and every stretch is whole
    64-byte lines (no scalar tail in the kernel), so the update is the one a single call would make. A small
    stack stays in cache anyway and steps in one call after the backward (one dispatch instead of one a layer).

    Replicas may differ in their rate and its decay (`lr`, `lr_decay` per replica). Replicas of one (rate, decay)
    form a class; the first class steps the stretch in place, every other one steps a copy of the stretch as it
    was and takes its own replicas' weights from it. The moments do not depend on the rate, so every element is
    computed as a stack of its class alone computes it, by the same kernel on a whole-line stretch."""

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
        self.classes = ClassElements(net, self.class_of) if len(keys) > 1 else None

    @property
    def lr(self) -> float:
        """The first replica's rate (every replica's, in a stack of one class)."""
        return self.lrs[0]

    @lr.setter
    def lr(self, value: float) -> None:
        self.set_rate(0, value)

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
        part = slice(start, end)
        buffers = (self.weights[part], self.grads[part], self.exp_avg[part], self.exp_avg_sq[part])
        if self.classes is None:
            self.kernel(*buffers, 0)
            return
        before = self.classes.keep(buffers, part)
        self.kernel(*buffers, 0)
        for c in range(1, len(self.lrs)):
            weights, _, exp_avg, exp_avg_sq = self.classes.scratch(before, part, c)
            self.kernel(weights, buffers[1], exp_avg, exp_avg_sq, c)
            index = self.classes.index(c, start, end)
            buffers[0].index_copy_(0, index, weights.index_select(0, index))

    def kernel(self, weights, grads, exp_avg, exp_avg_sq, c: int) -> None:
        torch._fused_adam_([weights], [grads], [exp_avg], [exp_avg_sq], [], [self.steps],
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


class ClassElements:
    """Where each rate class's weights lie in the flat tensor, and the buffers a step of a mixed stack keeps:
    the stretch's weights and moments as they were before the step (the last class steps them themselves), and
    with three classes or more a copy of them that each other class steps."""

    def __init__(self, net: StackedNet, class_of: list[int]):
        flat = net.flat
        # padding belongs to the first class: its weights, gradients and moments are zeros whatever the rate
        self.owner = torch.zeros(flat.numel(), dtype=torch.int16, device=flat.device)
        for r, c in enumerate(class_of):
            for view in net.replica_parameters(r):
                self.owner.as_strided(view.shape, view.stride(), view.storage_offset() - flat.storage_offset()).fill_(c)
        self.last = max(class_of)
        self.indices: dict[tuple[int, int, int], torch.Tensor] = {}
        self.before = [aligned_buffer(flat.numel(), flat.device) for _ in range(3)]
        self.copy = [aligned_buffer(flat.numel(), flat.device) for _ in range(3)] if self.last > 1 else None

    def index(self, c: int, start: int, end: int) -> torch.Tensor:
        """Class c's positions within the stretch [start, end). Found at the stretch's first step, which is
        eager: a CUDA graph, captured later, replays with these very tensors."""
        key = (c, start, end)
        if key not in self.indices:
            self.indices[key] = torch.nonzero(self.owner[start:end] == c).reshape(-1)
        return self.indices[key]

    def keep(self, buffers: tuple, part: slice) -> list[torch.Tensor]:
        weights, _, exp_avg, exp_avg_sq = buffers
        kept = [b[part] for b in self.before]
        for mine, it in zip(kept, (weights, exp_avg, exp_avg_sq)):
            mine.copy_(it)
        return kept

    def scratch(self, before: list[torch.Tensor], part: slice, c: int) -> tuple:
        """The stretch as it was, for class c to step."""
        weights, exp_avg, exp_avg_sq = before if c == self.last else (
            b[part].copy_(kept) for b, kept in zip(self.copy, before))
        return weights, None, exp_avg, exp_avg_sq
