"""The paper's networks (section III, Table I) as plain PyTorch modules, and their dropout (equation 1, their
loss, is engine/loss.py).

Every network maps a pair input (N, 2, 14, 14) to (output logit (N,), digit logits or None).
The digit logits are a pair (left (N, 10), right (N, 10)) for the Siamese nets. Weight sharing is one aliasing:
`right is left`.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.paper.architecture import cnn_oc, cnn_side
from workbench.paper.config import RunConfig

DRAW_LEVELS = 65536  # dropout draws are 16-bit integers: p is rounded to a multiple of 1 / 65536


def mask_from_draws(draws: torch.Tensor, p: float | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The dropout mask of uniform 16-bit draws (int16, on [-2^15, 2^15)): a unit is kept when its draw is at
    least levels - 2^15, with levels = round(p * 2^16), and a kept unit carries 1 / (1 - levels / 2^16), so the
    mask stays unbiased. Float arithmetic instead of compare/select: it vectorises. The mask is contiguous in
    the draws' logical order. Both engines make their masks here, so equal draws give bit-equal masks.
    `p` may instead be mask_terms() of per-replica rates, shaped to broadcast along the draws' replica axis:
    each replica's units get the arithmetic of its own rate, with the same float32 operands (p 0: all ones)."""
    offset, scale = mask_terms(p) if isinstance(p, float | int) else p
    out = torch.empty(draws.shape, dtype=torch.float32, device=draws.device)
    out.copy_(draws)  # exact: integers of this size are exact in float32
    return out.sub_(offset).clamp_(0, 1).mul_(scale)


def mask_terms(p: float) -> tuple[int, float]:
    """What mask_from_draws subtracts from a draw and multiplies a kept unit by, for rate p."""
    levels = round(p * DRAW_LEVELS)
    return levels - DRAW_LEVELS // 2 - 1, DRAW_LEVELS / (DRAW_LEVELS - levels)


def dropout_rate(model: nn.Module) -> float:
    """The network's dropout rate (every dropout layer of a network has the config's)."""
    return max((m.p for m in model.modules() if isinstance(m, nn.Dropout)), default=0.0)


class Dropout(nn.Dropout):
    """nn.Dropout that takes its masks from `draws` (a StepDraws the engine attaches) while training: each
    replica's masks then come from its own (seed, round) stream, whatever else trains. Without draws attached
    it is plain nn.Dropout."""

    draws = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or self.draws is None:
            return super().forward(x)
        return x * self.draws.mask(x, self.p)


def hidden_stack(n_in: int, width: int, depth: int, dropout: float) -> list[nn.Module]:
    """`depth` blocks of Linear -> LeakyReLU -> Dropout, the first taking `n_in` features."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.LeakyReLU(), Dropout(dropout)]
    return layers


class BasicNet(nn.Module):
    """Both images flattened (392) -> KL x [Linear HL, LeakyReLU, Dropout] -> Linear 1."""

    def __init__(self, hl: int = 512, kl: int = 1, dropout: float = 0.2):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), *hidden_stack(2 * 14 * 14, hl, kl, dropout), nn.Linear(hl, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.body(x).squeeze(-1), None


class FcnSubnet(nn.Module):
    """One 14x14 image -> Linear 196 x HL ... (KL hidden layers) -> Linear HL x 10."""

    def __init__(self, hl: int, kl: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), *hidden_stack(14 * 14, hl, kl, dropout), nn.Linear(hl, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 14, 14) -> (N, 10)
        return self.body(x)


class CnnSubnet(nn.Module):
    """Conv BC x K, LeakyReLU, MaxPool 2, Dropout; Conv 2BC x K, LeakyReLU, Dropout; then the FCN head on OC."""

    def __init__(self, bc: int, k: int, hl: int, kl: int, dropout: float):
        super().__init__()
        if cnn_side(k) < 1:
            raise ValueError(f"K={k} leaves no feature map on a 14x14 image")
        self.features = nn.Sequential(
            nn.Conv2d(1, bc, k), nn.LeakyReLU(), nn.MaxPool2d(2), Dropout(dropout),
            nn.Conv2d(bc, 2 * bc, k), nn.LeakyReLU(), Dropout(dropout),
        )
        self.head = nn.Sequential(nn.Flatten(), *hidden_stack(cnn_oc(bc, k), hl, kl, dropout), nn.Linear(hl, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 14, 14) -> (N, 10)
        return self.head(self.features(x))


class SiameseNet(nn.Module):
    """Two subnets (one shared set of weights, or two), their 20 logits -> C-KL x [Linear C-HL] -> 1 logit."""

    def __init__(self, make_subnet, weight_sharing: bool, c_hl: int, c_kl: int, dropout: float):
        super().__init__()
        self.left = make_subnet()
        self.right = self.left if weight_sharing else make_subnet()
        width = c_hl if c_kl > 0 else 20
        self.combiner = nn.Sequential(*hidden_stack(20, c_hl, c_kl, dropout), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        left = self.left(x[:, 0:1])
        right = self.right(x[:, 1:2])
        out = self.combiner(torch.cat([left, right], dim=1)).squeeze(-1)
        return out, (left, right)


def build_model(config: RunConfig) -> nn.Module:
    if config.subnet == "basic":
        return BasicNet(config.hl, config.kl, config.dropout)
    if config.subnet == "fcn":
        def make_subnet():
            return FcnSubnet(config.hl, config.kl, config.dropout)
    else:
        def make_subnet():
            return CnnSubnet(config.bc, config.k, config.hl, config.kl, config.dropout)
    return SiameseNet(make_subnet, config.weight_sharing, config.c_hl, config.c_kl, config.dropout)


def is_weight_shared(model: nn.Module) -> bool:
    """Weight sharing, read from the model itself: both sides are one module."""
    return isinstance(model, SiameseNet) and model.right is model.left


def dropout_units(model: nn.Module) -> list[int]:
    """Units per pair of every dropout call of one forward pass, in call order (left subnet, right subnet,
    combiner): the layout of a step's dropout draws. Empty when dropout is off."""
    units: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda m, args: units.append(args[0][0].numel()))
             for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()
            model(torch.zeros(1, 2, 14, 14, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return units
