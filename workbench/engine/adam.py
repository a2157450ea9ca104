"""Adam over a stack's flat weights, one layer's stretch at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    stack stays in cache anyway and steps in one call after the backward (one dispatch instead of one a layer)."""

    betas, eps = (0.9, 0.999), 1e-8
    BY_LAYER_FROM = 1 << 20  # weights (4 MB; with gradients and moments, half this CPU's 32 MB L3)

    def __init__(self, net: StackedNet, lr: float, lr_on_device: bool = False):
        self.lr = lr  # a plain float: decay() multiplies it as torch's ExponentialLR does
        # a CUDA graph reads the rate from this tensor at each replay, instead of keeping the captured value
        self.lr_tensor = torch.tensor(lr, device=net.flat.device) if lr_on_device else None
        flat = net.flat
        self.weights, self.grads = flat, flat.grad
        self.exp_avg = aligned_buffer(flat.numel(), flat.device).zero_()
        self.exp_avg_sq = aligned_buffer(flat.numel(), flat.device).zero_()
        self.steps = torch.zeros((), dtype=torch.float32, device=flat.device)  # as torch keeps it when fused
        self.by_layer = flat.numel() >= self.BY_LAYER_FROM

    def begin_step(self) -> None:
        self.steps.add_(1)

    def step_layer(self, layer: StackedLayer) -> None:
        self.step_span(*layer.span)

    def step_all(self) -> None:
        self.step_span(0, self.weights.numel())

    def step_span(self, start: int, end: int) -> None:
        part = slice(start, end)
        torch._fused_adam_([self.weights[part]], [self.grads[part]], [self.exp_avg[part]], [self.exp_avg_sq[part]],
                           [], [self.steps], lr=self.lr if self.lr_tensor is None else self.lr_tensor, beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0,
                           eps=self.eps, amsgrad=False, maximize=False)

    def decay(self, gamma: float) -> None:
        self.lr = self.lr * gamma
        if self.lr_tensor is not None:
            self.lr_tensor.fill_(self.lr)
