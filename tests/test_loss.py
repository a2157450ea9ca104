"""Equation 1 in every form (workbench/engine/loss.py), each held to the reference pair_loss: by hand, the
stacked step's hand-written gradients against autograd, the epoch's reported loss, a constant guess's loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from workbench.engine.loss import (chance_loss, equation1_weights, loss_gradients, loss_weights, pair_loss,
                                   replica_losses, step_scales)
from workbench.paper.config import RunConfig

ALPHAS, AUX = [0.3, 1.0, 0.5], [True, False, True]  # three replicas: other alphas, the auxiliary loss on and off


def replicas(n: int, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(len(ALPHAS), n, generator=g)
    digits = torch.randn(len(ALPHAS), n, 2, 10, generator=g)
    classes = torch.randint(0, 10, (len(ALPHAS), n, 2), generator=g)
    return out, digits, classes, (classes[..., 0] <= classes[..., 1]).float()


def weights():
    configs = [RunConfig(alpha=a, aux_loss=x) for a, x in zip(ALPHAS, AUX)]
    return loss_weights(configs, torch.device("cpu"))


def test_equation_1_numerically():
    out = torch.tensor([0.3, -1.2])
    target = torch.tensor([1.0, 0.0])
    left = torch.tensor([[2.0] + [0.0] * 9, [0.0] * 9 + [1.0]])
    right = torch.tensor([[0.0, 1.0] + [0.0] * 8, [0.5] * 10])
    classes = torch.tensor([[0, 1], [9, 3]])
    alpha = 0.3

    def bce(z, t):
        p = 1 / (1 + math.exp(-z))
        return -(t * math.log(p) + (1 - t) * math.log(1 - p))

    def ce(row, c):
        return -(row[c] - math.log(sum(math.exp(v) for v in row)))

    expect_bce = (bce(0.3, 1) + bce(-1.2, 0)) / 2
    expect_left = (ce(left[0].tolist(), 0) + ce(left[1].tolist(), 9)) / 2
    expect_right = (ce(right[0].tolist(), 1) + ce(right[1].tolist(), 3)) / 2
    total = pair_loss(out, (left, right), target, classes, aux_loss=True, alpha=alpha)
    assert total.item() == pytest.approx(alpha * expect_bce + (1 - alpha) / 2 * (expect_left + expect_right), rel=1e-6)
    plain = pair_loss(out, (left, right), target, classes, aux_loss=False, alpha=alpha)
    assert plain.item() == pytest.approx(expect_bce, rel=1e-6)
    assert plain.item() == pytest.approx(F.binary_cross_entropy(torch.sigmoid(out), target).item(), rel=1e-5)


def test_per_replica_weights_are_equation_1s():
    w_bce, w_aux = weights()
    for k, (a, x) in enumerate(zip(ALPHAS, AUX)):
        assert (w_bce[k].item(), w_aux[k].item()) == pytest.approx(equation1_weights(x, a))
    assert equation1_weights(True, 0.3) == pytest.approx((0.3, 0.35)) and equation1_weights(False, 0.3) == (1.0, 0.0)


def test_a_steps_hand_written_gradients_are_autograds_of_the_reference_loss():
    batch = 5
    out, digits, classes, target = replicas(batch)
    out.requires_grad_(True)
    digits.requires_grad_(True)
    total = sum(pair_loss(out[r], (digits[r, :, 0], digits[r, :, 1]), target[r], classes[r], AUX[r], ALPHAS[r])
                for r in range(len(ALPHAS)))
    total.backward()
    onehot = F.one_hot(classes, 10).float()
    g_out, g_digits = loss_gradients(out.detach(), digits.detach(), target, onehot, *step_scales(*weights(), True, batch))
    assert torch.allclose(g_out, out.grad, atol=1e-6)
    assert torch.allclose(g_digits, digits.grad, atol=1e-6)
    assert g_digits[1].abs().max() == 0  # the replica without the auxiliary loss has no digit gradient


def test_epoch_losses_are_equation_1_averaged_over_the_batches():
    """The per-epoch loss each replica reports equals the mean over its batches of the reference loss."""
    g = torch.Generator().manual_seed(3)
    n, batch = 13, 5  # a short last batch
    out = torch.randn(2, n, generator=g)
    digits = torch.randn(2, n, 2, 10, generator=g)
    classes = torch.randint(0, 10, (2, n, 2), generator=g)
    target = (classes[..., 0] <= classes[..., 1]).float()
    alphas, aux = [0.3, 1.0], [True, False]
    w_bce = torch.tensor([a if x else 1.0 for a, x in zip(alphas, aux)])
    w_aux = torch.tensor([(1 - a) / 2 if x else 0.0 for a, x in zip(alphas, aux)])
    got = replica_losses(out, digits, target, classes, w_bce, w_aux, batch)
    for r in range(2):
        per_batch = [pair_loss(out[r, s:s + batch], (digits[r, s:s + batch, 0], digits[r, s:s + batch, 1]),
                               target[r, s:s + batch], classes[r, s:s + batch], aux[r], alphas[r])
                     for s in range(0, n, batch)]
        assert got[r].item() == pytest.approx(torch.stack(per_batch).mean().item(), rel=1e-5)


@pytest.mark.parametrize("aux", [True, False])
def test_a_constant_guess_costs_the_chance_loss(aux):
    config = RunConfig(alpha=0.3, aux_loss=aux)
    n = 6
    classes = torch.randint(0, 10, (n, 2), generator=torch.Generator().manual_seed(0))
    target = (classes[:, 0] <= classes[:, 1]).float()
    zeros = torch.zeros(n, 10)
    guess = pair_loss(torch.zeros(n), (zeros, zeros), target, classes, config.aux_loss, config.alpha)
    assert guess.item() == pytest.approx(chance_loss(config), rel=1e-6)
    assert chance_loss(config) == pytest.approx(math.log(2) if not aux else 0.3 * math.log(2) + 0.7 * math.log(10))
