import pytest
import torch

from workbench.paper.architecture import cnn_oc
from workbench.paper.config import RunConfig
from workbench.paper.models import BasicNet, CnnSubnet, FcnSubnet, build_model


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
    weight = model.left.body[1].weight
    x = torch.rand(4, 2, 14, 14)

    def gradient(left_side: bool, right_side: bool) -> torch.Tensor:
        """The shared weight's gradient with only the chosen sides' uses of it counted."""
        model.zero_grad()
        left, right = model.left(x[:, 0:1]), model.right(x[:, 1:2])
        left, right = (left if left_side else left.detach()), (right if right_side else right.detach())
        model.combiner(torch.cat([left, right], 1)).sum().backward()
        return weight.grad.clone()

    both, left_only, right_only = gradient(True, True), gradient(True, False), gradient(False, True)
    # the same weights used twice receive the sum of both uses' gradients, and each use contributes
    assert torch.allclose(both, left_only + right_only, atol=1e-6)
    assert left_only.abs().sum() > 0 and right_only.abs().sum() > 0


def test_the_weight_count_is_the_built_networks_parameters_for_every_preset_and_many_configs():
    import itertools

    from workbench.paper.architecture import sharing_saves, weight_count
    from workbench.paper.config import RunConfig
    from workbench.paper.presets import load_presets

    def built(config):
        with torch.device("meta"):  # shapes only
            return sum(p.numel() for p in build_model(config).parameters())

    configs = [p.config for p in load_presets().values()]
    for subnet, ws, kl, c_kl, k in itertools.product(("basic", "fcn", "cnn"), (False, True), (1, 3), (0, 2), (3, 5)):
        if subnet == "basic" and (ws or c_kl or k == 5):
            continue
        configs.append(RunConfig(subnet=subnet, weight_sharing=ws, hl=24, kl=kl, c_hl=12, c_kl=c_kl, bc=6, k=k,
                                 aux_loss=subnet != "basic"))
    for config in configs:
        assert weight_count(config) == built(config), config
        if config.subnet != "basic":  # sharing saves exactly one subnet
            other = config.replace(weight_sharing=not config.weight_sharing)
            assert abs(weight_count(config) - weight_count(other)) == sharing_saves(config)
