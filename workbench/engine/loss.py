"""Equation 1 in every form the workbench needs, side by side:

    loss = w_bce * BCE(output, target) + w_aux * (CE(left digits, left class) + CE(right digits, right class))

with (w_bce, w_aux) = (alpha, (1 - alpha) / 2) under the auxiliary loss and (1, 0) without. The reference loss
(pair_loss) trains the loop engine; the stacked engine uses the per-replica weights (loss_weights), the
hand-written gradients of a step (loss_gradients) and the epoch's reported loss (replica_losses); chance_loss
is a constant guess's, the yardstick of divergence. tests/test_loss.py holds them to one another.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from workbench.paper.config import RunConfig


def equation1_weights(aux_loss: bool, alpha: float) -> tuple[float, float]:
    """Equation 1 as weights (w_bce, w_aux): (alpha, (1 - alpha) / 2) with the auxiliary loss, (1, 0) without."""
    return (alpha, (1 - alpha) / 2) if aux_loss else (1.0, 0.0)


def pair_loss(out: torch.Tensor, digits, target: torch.Tensor, classes: torch.Tensor,
              aux_loss: bool, alpha: float) -> torch.Tensor:
    """The reference: BCE on the output logit plus, with the auxiliary loss, the two digit cross-entropies;
    `digits` is the Siamese nets' (left (N, 10), right (N, 10)) or None."""
    bce = F.binary_cross_entropy_with_logits(out, target)
    if not aux_loss or digits is None:
        return bce
    w_bce, w_aux = equation1_weights(aux_loss, alpha)
    left, right = digits
    return w_bce * bce + w_aux * (F.cross_entropy(left, classes[:, 0]) + F.cross_entropy(right, classes[:, 1]))


def chance_loss(config: RunConfig) -> float:
    """Equation 1's loss of a constant guess: ln 2 for the comparison, ln 10 for each digit."""
    w_bce, w_aux = equation1_weights(config.aux_loss, config.alpha)
    return w_bce * math.log(2) + w_aux * 2 * math.log(10)


def loss_weights(configs: list[RunConfig], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per replica, equation 1's weights (w_bce, w_aux), each (R,)."""
    w_bce, w_aux = zip(*(equation1_weights(c.aux_loss, c.alpha) for c in configs))
    return torch.tensor(w_bce, device=device), torch.tensor(w_aux, device=device)


def step_scales(w_bce: torch.Tensor, w_aux: torch.Tensor, any_aux: bool, batch: int):
    """(w_bce / B as (R, 1), w_aux / B as (R, 1, 1, 1) or None) for a batch of B pairs."""
    return w_bce.view(-1, 1) / batch, (w_aux.view(-1, 1, 1, 1) / batch if any_aux else None)


def loss_gradients(out: torch.Tensor, digits: torch.Tensor | None, target: torch.Tensor,
                   onehot: torch.Tensor | None, bce_scale: torch.Tensor, aux_scale: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of the summed replica losses (equation 1 with per-replica weights) with respect to the output
    logits (R, B) and the digit logits (R, B, 2, 10), with the scales of step_scales. The loss values themselves
    are only reported per epoch, so a step does not compute them (replica_losses does, once an epoch)."""
    g_out = torch.sigmoid(out).sub_(target).mul_(bce_scale)
    if aux_scale is None or digits is None:
        return g_out, None
    g_digits = (digits - digits.amax(3, keepdim=True)).exp_()
    g_digits.div_(g_digits.sum(3, keepdim=True)).sub_(onehot).mul_(aux_scale)  # softmax - onehot
    return g_out, g_digits


def replica_losses(out: torch.Tensor, digits: torch.Tensor | None, target: torch.Tensor, classes: torch.Tensor,
                   w_bce: torch.Tensor, w_aux: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Each replica's training loss (R,) over an epoch, from the logits each pair had when it was trained:
    equation 1 per batch, averaged over the epoch's batches (as the loop engine reports it)."""
    R, n = out.shape
    per_pair = w_bce.unsqueeze(1) * F.binary_cross_entropy_with_logits(out, target, reduction="none")
    if digits is not None:
        shifted = digits - digits.amax(3, keepdim=True)
        log_p = shifted - shifted.exp().sum(3, keepdim=True).log_()
        per_pair = per_pair - w_aux.unsqueeze(1) * log_p.gather(3, classes.unsqueeze(3)).sum((2, 3))
    steps = math.ceil(n / batch_size)
    sums = torch.zeros(R, steps, device=out.device).index_add_(1, torch.arange(n, device=out.device) // batch_size,
                                                                per_pair)
    sizes = torch.full((steps,), float(batch_size), device=out.device)
    sizes[-1] = n - batch_size * (steps - 1)
    return (sums / sizes).mean(1)
