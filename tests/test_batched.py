"""The batched engine is R independent trainings: exactly, step for step, and in its statistics."""

import os
import statistics
import threading

import pytest
import torch
import torch.nn.functional as F

from workbench.config import RunConfig
from workbench.engine import run_configs, stack_groups
from workbench.engine.batched import StackedNet, loss_weights, replica_losses, step_scales, train_step
from workbench.engine.loop import init_model
from workbench.models import pair_loss

R, B = 3, 5
# The exactness tests run on CPU here; on a GPU machine, DIGIT_WORKBENCH_TEST_DEVICE=cuda runs them there.
DEVICE = torch.device(os.environ.get("DIGIT_WORKBENCH_TEST_DEVICE", "cpu"))
if DEVICE.type == "cuda":
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions round differently per algorithm


def reference_steps(models, batches, config_per_replica, steps):
    """R plain models, each with its own Adam, trained on its own batches."""
    out = []
    for r, model in enumerate(models):
        cfg = config_per_replica[r]
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for x, classes, target in batches[:steps]:
            o, digits = model(x[r])
            loss = pair_loss(o, digits, target[r], classes[r], cfg.aux_loss, cfg.alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
        out.append([p.detach().clone() for p in model.parameters()])
    return out


def stacked_steps(net, batches, config_per_replica, steps):
    w_bce, w_aux = loss_weights(config_per_replica, DEVICE)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    scales = step_scales(w_bce, w_aux, any(c.aux_loss for c in config_per_replica), B)
    for x, classes, target in batches[:steps]:
        train_step(net, opt, x, target, F.one_hot(classes, 10).float(), *scales)
    return [[p.detach().clone() for p in net.replica_parameters(r)] for r in range(R)]


def make_batches(n_steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_steps):
        classes = torch.randint(0, 10, (R, B, 2), generator=g)
        x = torch.rand(R, B, 2, 14, 14, generator=g) * 255
        batches.append((x.to(DEVICE), classes.to(DEVICE), (classes[..., 0] <= classes[..., 1]).float().to(DEVICE)))
    return batches


NETWORKS = [("basic", False, "off")] + [(subnet, ws, aux) for subnet in ("fcn", "cnn") for ws in (True, False)
                                        for aux in ("off", "on", "mixed")]  # the basic net has no subnets


@pytest.mark.parametrize("subnet, weight_sharing, aux", NETWORKS)
@pytest.mark.parametrize("steps", [1, 4])
def test_batched_steps_equal_independent_models(subnet, weight_sharing, aux, steps):
    base = RunConfig(subnet=subnet, weight_sharing=weight_sharing, dropout=0.0, hl=24, kl=2, c_hl=12, c_kl=1,
                     bc=3, k=3, device="cpu")
    configs = [base.replace(aux_loss=(aux == "on" or (aux == "mixed" and r % 2 == 0)), alpha=0.3 + 0.2 * r)
               for r in range(R)]
    reference = [init_model(configs[r], r).to(DEVICE) for r in range(R)]
    net = StackedNet(base, [init_model(configs[r], r) for r in range(R)], DEVICE)
    for r in range(R):  # the stack starts from exactly the reference weights
        for mine, theirs in zip(net.replica_parameters(r), reference[r].parameters()):
            assert torch.equal(mine, theirs)
    batches = make_batches(steps)
    expected = reference_steps(reference, batches, configs, steps)
    got = stacked_steps(net, batches, configs, steps)
    for r in range(R):
        assert len(got[r]) == len(expected[r])
        for mine, theirs in zip(got[r], expected[r]):
            assert mine.shape == theirs.shape
            # Adam divides by sqrt(v): float noise on a near-zero gradient moves a weight by up to a
            # small fraction of one step (lr = 1e-3), so the tolerance is 2% of a step.
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=2e-5)
        initial = [p.detach().to(DEVICE) for p in init_model(configs[r], r).parameters()]
        moved = any(not torch.equal(a, b) for a, b in zip(got[r], initial))
        assert moved


def test_batched_forward_equals_reference_in_eval_mode():
    base = RunConfig(subnet="cnn", weight_sharing=False, device="cpu")
    models = [init_model(base, r).to(DEVICE) for r in range(R)]
    net = StackedNet(base, models, DEVICE)
    x = torch.rand(R, 7, 2, 14, 14, device=DEVICE) * 255
    out, digits = net.forward(x, training=False)
    for r, model in enumerate(models):
        model.eval()
        o, (l, rr) = model(x[r])
        torch.testing.assert_close(out[r], o, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(digits[r, :, 0], l, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(digits[r, :, 1], rr, rtol=1e-4, atol=1e-4)


def test_without_dropout_both_engines_train_the_same_rounds(source):
    """Same initial weights, pair sets and batch order: with dropout off the engines agree round by round."""
    config = RunConfig(subnet="fcn", dropout=0.0, rounds=3, epochs=2, pairs=300, batch_size=10, device="cpu")
    loop = run_configs([config], source, engine="loop")[0]
    batched = run_configs([config], source, engine="batched")[0]
    for a, b in zip(loop.rounds, batched.rounds):
        assert a.test_acc == pytest.approx(b.test_acc, abs=0.01)
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-3)


def test_both_engines_agree_within_their_noise(source):
    config = RunConfig(subnet="fcn", rounds=6, epochs=2, pairs=600, batch_size=10, device="cpu")
    loop = run_configs([config], source, engine="loop")[0].test_accuracies()
    batched = run_configs([config.replace(seed=100)], source, engine="batched")[0].test_accuracies()
    spread = (statistics.stdev(loop) ** 2 / len(loop) + statistics.stdev(batched) ** 2 / len(batched)) ** 0.5
    assert abs(statistics.fmean(loop) - statistics.fmean(batched)) < 3 * spread + 0.01


def test_loss_variants_share_a_stack_and_keep_their_own_losses(source, tiny):
    tiny = tiny.replace(dropout=0.0)
    configs = [tiny.replace(aux_loss=False), tiny, tiny.replace(alpha=0.1), tiny.replace(weight_sharing=False)]
    assert stack_groups(configs) == [[0, 1, 2], [3]]
    records = []
    results = run_configs(configs, source, on_epoch=records.append)
    assert [r.config for r in results] == configs
    assert {rec.run for rec in records} == {0, 1, 2, 3}
    alone = run_configs([tiny.replace(alpha=0.1)], source)[0]
    # stacked with others or alone, a config's rounds see the same data and initial weights
    assert results[2].rounds[0].test_acc == pytest.approx(alone.rounds[0].test_acc, abs=0.006)
    assert results[0].rounds[0].digit_acc < results[1].rounds[0].digit_acc  # only the aux loss teaches digits


def test_stacks_side_by_side_in_processes_match_one_at_a_time(source, tiny, monkeypatch):
    configs = [tiny, tiny.replace(weight_sharing=False), tiny.replace(subnet="cnn", bc=2)]
    records, threads = [], []

    def on_epoch(rec):  # the calling thread trains a stack too: records come from two threads, one at a time
        threads.append(threading.current_thread().name)
        records.append(rec)

    torch_threads = torch.get_num_threads()
    parallel = run_configs(configs, source, on_epoch=on_epoch)
    assert sorted((r.run, r.round, r.epoch) for r in records) == [
        (i, r, e) for i in range(3) for r in range(2) for e in (1, 2)]
    assert threading.current_thread().name in threads and "stack-dispatch" in threads
    assert torch.get_num_threads() == torch_threads  # the caller's thread count is given back
    monkeypatch.setenv("DIGIT_WORKBENCH_PROCESSES", "1")
    serial = run_configs(configs, source)
    for a, b in zip(parallel, serial):
        assert a.status == b.status == "done"
        assert a.test_accuracies() == pytest.approx(b.test_accuracies(), abs=0.011)


def test_cancel_reaches_stacks_in_processes(source):
    import threading
    import time

    configs = [RunConfig(subnet="cnn", rounds=2, epochs=100, device="cpu"),
               RunConfig(subnet="fcn", rounds=2, epochs=100, device="cpu")]
    cancel = threading.Event()
    set_at = {}

    def on_epoch(rec):
        if not cancel.is_set():
            set_at["t"] = time.monotonic()
            cancel.set()

    results = run_configs(configs, source, on_epoch=on_epoch, cancel=cancel)
    assert time.monotonic() - set_at["t"] < 1.5  # within a second, plus the workers' shutdown
    assert [r.status for r in results] == ["cancelled", "cancelled"]


def test_dropout_masks_keep_one_minus_p_scaled_in_the_inputs_memory_order():
    from workbench.engine.batched import dropout_mask

    x = torch.randn(8, 160, 6, 6).contiguous(memory_format=torch.channels_last)
    for p in (0.2, 0.5):
        g = torch.Generator().manual_seed(1)
        mask = dropout_mask(x, p, g)
        assert mask.shape == x.shape and mask.stride() == x.stride()
        kept = mask > 0
        assert kept.float().mean().item() == pytest.approx(1 - p, abs=0.01)
        assert torch.unique(mask[kept]).tolist() == [pytest.approx(1 / (1 - p), rel=1e-4)]
        assert (mask * x).mean().item() == pytest.approx(x.mean().item(), abs=0.02)  # unbiased
        again = dropout_mask(x, p, torch.Generator().manual_seed(1))
        assert torch.equal(mask, again)  # the stack's generator alone decides
        assert not torch.equal(mask, dropout_mask(x, p, g))  # and each step draws anew
    odd = dropout_mask(torch.ones(3, 7), 0.2, torch.Generator().manual_seed(0))  # numel not a multiple of 4
    assert odd.shape == (3, 7)


def test_the_longest_stacks_are_estimated_longest():
    from workbench.config import TABLE_II, find_preset
    from workbench.engine import stack_cost

    configs = [find_preset(name).config for name in TABLE_II]
    cost = {TABLE_II[g[0]]: stack_cost(configs, g) for g in stack_groups(configs)}
    # measured on one core: CNN without sharing > CNN shared > FCN without sharing > FCN shared
    assert cost["table2-cnn-plain"] > cost["table2-cnn-ws"] > cost["table2-fcn-plain"] > cost["table2-fcn-ws"]
    wide = [configs[0].replace(hl=512)]
    assert stack_cost(wide, [0]) > stack_cost(configs[:1], [0])
    assert stack_cost([configs[0].replace(rounds=20)], [0]) > stack_cost(configs[:1], [0])


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


def test_the_digits_are_shared_before_any_process_starts(source, tiny, monkeypatch):
    """Sending tensors to a process moves them into shared memory and frees the old buffers; the calling
    thread trains meanwhile, so the move must be done before, not while it reads them."""
    from concurrent.futures import ProcessPoolExecutor

    from workbench.data import DigitSet, DigitSource

    source = DigitSource(source.name, *(DigitSet(part.images.clone(), part.labels.clone())
                                        for part in (source.train, source.test)))  # not shared yet
    assert not source.train.images.is_shared()
    seen = []
    real_init = ProcessPoolExecutor.__init__

    def spy(self, *args, **kwargs):
        seen.append(all(t.is_shared() for t in (source.train.images, source.train.labels,
                                                 source.test.images, source.test.labels)))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "__init__", spy)
    results = run_configs([tiny, tiny.replace(weight_sharing=False)], source)
    assert seen == [True] and [r.status for r in results] == ["done", "done"]


@pytest.mark.parametrize("k, batch_size", [(5, 1), (3, 7)])
def test_edge_shapes_train(source, k, batch_size):
    """1 x 1 feature maps (K = 5), single-pair batches, and a short last batch (203 pairs) train and score."""
    config = RunConfig(subnet="cnn", weight_sharing=False, k=k, bc=2, hl=16, c_hl=8, dropout=0.5, rounds=2,
                       epochs=1, pairs=203, batch_size=batch_size, device="cpu")
    (result,) = run_configs([config], source)
    assert result.status == "done", result.reason
    assert all(0.0 <= r.test_acc <= 1.0 and r.train_loss > 0 for r in result.rounds)
