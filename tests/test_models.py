import math

import pytest
import torch
import torch.nn.functional as F

from workbench.config import RunConfig
from workbench.engine.loss import pair_loss
from workbench.models import BasicNet, CnnSubnet, FcnSubnet, build_model, cnn_oc


@pytest.mark.parametrize("subnet", ["basic", "fcn", "cnn"])
@pytest.mark.parametrize("weight_sharing", [True, False])
def test_every_network_maps_pairs_to_one_logit(subnet, weight_sharing):
    model = build_model(RunConfig(subnet=subnet, weight_sharing=weight_sharing, kl=2, c_kl=2))
    out, digits = model(torch.rand(7, 2, 14, 14) * 255)
    assert out.shape == (7,)
    if subnet == "basic":
        assert digits is None
    else:
        assert digits[0].shape == digits[1].shape == (7, 10)


@pytest.mark.parametrize("k, side", [(3, 4), (5, 1), (1, 7)])
def test_cnn_flattened_size_follows_from_bc_and_k(k, side):
    net = CnnSubnet(bc=6, k=k, hl=32, kl=1, dropout=0.0)
    assert cnn_oc(6, k) == 12 * side * side
    assert net(torch.rand(3, 1, 14, 14)).shape == (3, 10)
    assert net.head[1].in_features == cnn_oc(6, k)


def test_table_i_layer_counts():
    fcn = FcnSubnet(hl=64, kl=3, dropout=0.2)
    linears = [m for m in fcn.modules() if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(196, 64), (64, 64), (64, 64), (64, 10)]
    basic = BasicNet(hl=512, kl=1)
    assert [(l.in_features, l.out_features) for l in basic.modules() if isinstance(l, torch.nn.Linear)] == [
        (392, 512), (512, 1)]


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_weight_sharing_uses_one_parameter_set():
    shared = build_model(RunConfig(subnet="fcn", weight_sharing=True))
    separate = build_model(RunConfig(subnet="fcn", weight_sharing=False))
    subnet = count(shared.left)
    assert shared.left is shared.right
    assert count(separate) - count(shared) == subnet
    # a change to one side's weights shows on the other only when shared
    with torch.no_grad():
        shared.left.body[1].weight.add_(1.0)
        separate.left.body[1].weight.add_(1.0)
    assert torch.equal(shared.left.body[1].weight, shared.right.body[1].weight)
    assert not torch.equal(separate.left.body[1].weight, separate.right.body[1].weight)


def test_shared_gradients_add_both_sides():
    model = build_model(RunConfig(subnet="fcn", weight_sharing=True, dropout=0.0))
    x = torch.rand(4, 2, 14, 14)
    out, _ = model(x)
    out.sum().backward()
    grad = model.left.body[1].weight.grad.clone()
    # the same weights used twice receive the sum of both uses' gradients
    model.zero_grad()
    left_only = model.combiner(torch.cat([model.left(x[:, 0:1]), model.right(x[:, 1:2]).detach()], 1)).sum()
    left_only.backward()
    assert not torch.allclose(grad, model.left.body[1].weight.grad)


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
