"""The batched engine is R independent trainings: exactly, step for step, and in its statistics."""

import os
import threading
import time

import pytest
import torch
import torch.nn.functional as F

from workbench.engine import run_configs, stack_groups
from workbench.engine.adam import StackAdam
from workbench.engine.loss import loss_gradients, loss_weights, pair_loss, step_scales
from workbench.engine.stacked import StackedNet, train_step
from workbench.paper.config import RunConfig
from workbench.paper.randomness import DropoutLayout, DropoutStream, StepDraws, attach_draws, init_model

R, B = 3, 5
# The exactness tests run on CPU here; on a GPU machine, DIGIT_WORKBENCH_TEST_DEVICE=cuda runs them there.
DEVICE = torch.device(os.environ.get("DIGIT_WORKBENCH_TEST_DEVICE", "cpu"))
if DEVICE.type == "cuda":
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions round differently per algorithm


def step_draws(models, steps):
    """The dropout draws of R replicas (seed 0, rounds 0..R-1) for `steps` steps of epoch 1."""
    stream = DropoutStream([(0, r) for r in range(R)], DropoutLayout.of(models[0], B), DEVICE)
    stream.start_epoch(1)
    return [None if (d := stream.step(t)) is None else d.clone() for t in range(steps)]


def reference_steps(models, batches, config_per_replica, steps, draws):
    """R plain models trained by autograd, each with its own Adam, on its own batches and dropout draws."""
    out = []
    for r, model in enumerate(models):
        cfg = config_per_replica[r]
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        mine = StepDraws(DropoutLayout.of(model, B))
        attach_draws(model, mine)
        model.train()
        for (x, classes, target), d in zip(batches[:steps], draws):
            if d is not None:
                mine.start(d[r])
            o, digits = model(x[r])
            loss = pair_loss(o, digits, target[r], classes[r], cfg.aux_loss, cfg.alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
        out.append([p.detach().clone() for p in model.parameters()])
    return out


def stacked_steps(net, batches, config_per_replica, steps, draws):
    w_bce, w_aux = loss_weights(config_per_replica, DEVICE)
    opt = StackAdam(net, lr=1e-3)
    scales = step_scales(w_bce, w_aux, any(c.aux_loss for c in config_per_replica), B)
    for (x, classes, target), d in zip(batches[:steps], draws):
        train_step(net, opt, x, target, F.one_hot(classes, 10).float(), d, *scales)
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
@pytest.mark.parametrize("steps, dropout", [(1, 0.0), (4, 0.0), (4, 0.3)])
def test_batched_steps_equal_independent_models(subnet, weight_sharing, aux, steps, dropout):
    """The stack's hand-written backward (the dropout path included) equals autograd on R plain models."""
    base = RunConfig(subnet=subnet, weight_sharing=weight_sharing, dropout=dropout, hl=24, kl=2, c_hl=12, c_kl=1,
                     bc=3, k=3, device="cpu")
    configs = [base.replace(aux_loss=(aux == "on" or (aux == "mixed" and r % 2 == 0)), alpha=0.3 + 0.2 * r)
               for r in range(R)]
    reference = [init_model(configs[r], r).to(DEVICE) for r in range(R)]
    net = StackedNet([init_model(configs[r], r) for r in range(R)], DEVICE, B)
    for r in range(R):  # the stack starts from exactly the reference weights
        for mine, theirs in zip(net.replica_parameters(r), reference[r].parameters()):
            assert torch.equal(mine, theirs)
    batches = make_batches(steps)
    draws = step_draws(reference, steps)
    assert (draws[0] is None) == (dropout == 0)
    expected = reference_steps(reference, batches, configs, steps, draws)
    got = stacked_steps(net, batches, configs, steps, draws)
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
    net = StackedNet(models, DEVICE, B)
    x = torch.rand(R, 7, 2, 14, 14, device=DEVICE) * 255
    out, digits = net.forward(x)
    for r, model in enumerate(models):
        model.eval()
        o, (l, rr) = model(x[r])
        torch.testing.assert_close(out[r], o, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(digits[r, :, 0], l, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(digits[r, :, 1], rr, rtol=1e-4, atol=1e-4)


def capture_masks(net_or_model, x, draws, r=None):
    """The dropout masks of one training forward: of the stack (from its tape), or of a plain model."""
    if r is None:
        tape: dict = {}
        net_or_model.forward(x, draws, tape)
        return [saved[1] for part in ("body", "subnet", "combiner") for layer, saved in tape.get(part, [])
                if type(layer).__name__ == "StackedActivation" and saved[1] is not None]
    masks = []

    class Recording(StepDraws):
        def mask(self, x, p):
            masks.append(super().mask(x, p))
            return masks[-1]

    recording = Recording(DropoutLayout.of(net_or_model, B))
    attach_draws(net_or_model, recording)
    recording.start(draws[r])
    net_or_model.train()
    net_or_model(x[r])
    return masks


@pytest.mark.parametrize("subnet, weight_sharing", [("basic", False), ("fcn", True), ("fcn", False),
                                                     ("cnn", True), ("cnn", False)])
def test_both_engines_draw_the_same_dropout_masks(subnet, weight_sharing):
    """Compared directly: replica r of the stack gets, unit for unit, the masks the loop gives round r."""
    config = RunConfig(subnet=subnet, weight_sharing=weight_sharing, hl=24, c_hl=12, bc=3, k=3, dropout=0.4,
                       device="cpu")
    models = [init_model(config, r) for r in range(R)]
    net = StackedNet([init_model(config, r) for r in range(R)], DEVICE, B)
    x = torch.rand(R, B - 2, 2, 14, 14)  # a short batch: the first pairs of each block
    draws = step_draws(models, 1)[0]
    stacked = capture_masks(net, x, draws)
    for r in range(R):
        plain = capture_masks(models[r], x, draws, r)
        if subnet == "basic":
            expected = [m[r] for m in stacked]
        else:
            n = len(stacked) - 1  # subnet layers, then the combiner's one
            per_side = []
            for m in stacked[:n]:
                if m.dim() == 3:  # features (S, N, U)
                    sides = m[r].view(-1, 2, m.shape[2]).unbind(1) if weight_sharing else (m[r], m[R + r])
                else:  # maps (N, S*C, H, W)
                    N, SC, H, W = m.shape
                    if weight_sharing:
                        sides = m.view(N // 2, 2, R, SC // R, H, W)[:, :, r].unbind(1)
                    else:
                        sides = m.view(N, 2, R, SC // (2 * R), H, W)[:, :, r].unbind(1)
                per_side.append(sides)
            expected = [s[0] for s in per_side] + [s[1] for s in per_side] + [stacked[n][r]]
        assert len(plain) == len(expected) > 0
        for mine, theirs in zip(expected, plain):
            assert torch.equal(mine.reshape(theirs.shape), theirs)


def test_dropout_streams_are_per_round_and_per_epoch():
    model = init_model(RunConfig(subnet="fcn", device="cpu"), 0)
    layout = DropoutLayout.of(model, 5)
    assert layout.units == (64, 64, 64)  # left subnet, right subnet, combiner (one module, called twice)
    alone = DropoutStream([(0, 1)], layout, DEVICE)
    mates = DropoutStream([(0, 0), (7, 3), (0, 1)], layout, DEVICE)
    for stream in (alone, mates):
        stream.start_epoch(2)
    rows = [(alone.step(t)[0].clone(), *mates.step(t)[[2, 0]].clone()) for t in range(40)]
    assert all(torch.equal(a, b) for a, b, _ in rows)  # a round's draws do not depend on what draws beside it
    assert not torch.equal(rows[0][0], rows[0][2])  # another round draws otherwise
    assert not torch.equal(rows[0][0], rows[1][0]) and not torch.equal(rows[0][0], rows[16][0])  # each step anew
    alone.start_epoch(3)
    assert not torch.equal(alone.step(0)[0], rows[0][0])  # and each epoch


def test_dropout_masks_keep_one_minus_p_scaled_and_unbiased():
    from workbench.paper.models import mask_from_draws

    draws = torch.empty(200_000, dtype=torch.int64).random_(-2 ** 63, None, generator=torch.Generator().manual_seed(1))
    draws = draws.view(torch.int16)
    x = torch.randn(draws.shape)
    for p in (0.2, 0.5):
        mask = mask_from_draws(draws, p)
        kept = mask > 0
        assert kept.float().mean().item() == pytest.approx(1 - p, abs=0.005)
        assert torch.unique(mask[kept]).tolist() == [pytest.approx(1 / (1 - p), rel=1e-4)]
        assert (mask * x).mean().item() == pytest.approx(x.mean().item(), abs=0.01)  # unbiased


def tiny_variants(config, n):
    """n stack-mates of config: other alphas, the auxiliary loss on and off."""
    return [config.replace(alpha=0.1 + 0.1 * k, aux_loss=k % 3 != 2) for k in range(n)]


@pytest.mark.parametrize("subnet, weight_sharing", [("basic", False), ("fcn", True), ("fcn", False),
                                                     ("cnn", True), ("cnn", False)])
def test_a_configs_numbers_do_not_depend_on_its_stack_mates(source, subnet, weight_sharing):
    """Alone, with 1, 3 and 7 stack-mates, on one or two threads: the same per-round figures, bit for bit."""
    config = RunConfig(subnet=subnet, weight_sharing=weight_sharing, hl=24, c_hl=12, bc=3, rounds=2, epochs=2,
                       pairs=200, batch_size=5, dropout=0.3, device="cpu")
    mates = ([config.replace(seed=k + 1) for k in range(7)] if subnet == "basic" else tiny_variants(config, 7))

    def figures(result):
        return [(r.test_acc, r.train_loss, r.train_acc, r.digit_acc) for r in result.rounds]

    alone = figures(run_configs([config], source)[0])
    for n in (1, 3, 7):
        assert figures(run_configs(mates[:n // 2] + [config] + mates[n // 2:n], source)[n // 2]) == alone
    torch.set_num_threads(1)
    try:
        assert figures(run_configs([config], source)[0]) == alone
    finally:
        torch.set_num_threads(2)
    one_round = config.replace(rounds=1)  # a lone replica trains beside a copy of itself
    assert figures(run_configs([one_round], source)[0]) == alone[:1]


def test_a_stack_in_a_worker_process_gives_the_same_numbers(source, tiny):
    """Two architectures train side by side, one in this thread and one in a worker process: each gives the
    figures it gives alone, and records reach the caller from both, one at a time."""
    configs = [tiny.replace(hl=64), tiny]  # the larger stack starts here, the other in the process
    records, threads = [], []

    def on_epoch(rec):
        threads.append(threading.current_thread().name)
        records.append(rec)

    torch_threads = torch.get_num_threads()
    together = run_configs(configs, source, on_epoch=on_epoch)
    assert threading.current_thread().name in threads and "stack-dispatch" in threads
    assert sorted((r.run, r.round, r.epoch) for r in records) == [
        (i, r, e) for i in range(2) for r in range(2) for e in (1, 2)]
    assert torch.get_num_threads() == torch_threads  # the caller's thread count is given back
    for config, result in zip(configs, together):
        alone = run_configs([config], source)[0]
        assert result.status == alone.status == "done"
        assert [(r.test_acc, r.train_loss) for r in result.rounds] == [(r.test_acc, r.train_loss) for r in alone.rounds]


@pytest.mark.parametrize("subnet, weight_sharing, aux", [("basic", False, False)] + [
    (s, w, a) for s in ("fcn", "cnn") for w in (True, False) for a in (False, True)])
def test_both_engines_train_the_same_function(source, subnet, weight_sharing, aux):
    """Same weights, pairs, batch order and dropout masks: the engines differ only in float rounding (batched
    products and grouped convolutions sum in other orders). Over 2 epochs that leaves the test accuracies
    equal and the losses within 1e-5; allowed here: one test pair of 200, losses within 1e-4."""
    config = RunConfig(subnet=subnet, weight_sharing=weight_sharing, aux_loss=aux, hl=32, c_hl=16, bc=3, rounds=2,
                       epochs=2, pairs=200, batch_size=5, device="cpu")
    loop = run_configs([config], source, engine="loop")[0]
    batched = run_configs([config], source, engine="batched")[0]
    for a, b in zip(loop.rounds, batched.rounds):
        assert abs(a.test_acc - b.test_acc) <= 1 / 200 + 1e-6
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)


def test_loss_variants_share_a_stack_and_keep_their_own_losses(source, tiny):
    configs = [tiny.replace(aux_loss=False), tiny, tiny.replace(alpha=0.1), tiny.replace(weight_sharing=False)]
    assert stack_groups(configs) == [[0, 1, 2], [3]]
    records = []
    results = run_configs(configs, source, on_epoch=records.append)
    assert [r.config for r in results] == configs
    assert {rec.run for rec in records} == {0, 1, 2, 3}
    assert sorted((r.run, r.round, r.epoch) for r in records) == [
        (i, r, e) for i in range(4) for r in range(2) for e in (1, 2)]
    assert results[0].rounds[0].digit_acc is None  # untrained digit heads: no figure to report
    assert results[1].rounds[0].digit_acc > 0.3  # the aux loss teaches digits


def test_seeds_re_pairing_and_augmentation_share_a_stack_each_with_the_numbers_it_gets_alone(source, tiny,
                                                                                               monkeypatch):
    """A grid over the seed, re-pairing or augmentation trains one stack: each replica draws from its own
    streams, so each config's numbers are those it gets alone, bit for bit."""
    import numpy as np

    monkeypatch.setenv("DIGIT_WORKBENCH_PROCESSES", "1")  # one stack, this process: nothing split by rounds
    configs = [tiny, tiny.replace(repair=True), tiny.replace(seed=3), tiny.replace(shift=1, rotate=10.0),
               tiny.replace(seed=5, repair=True, shift=2, aux_loss=False)]
    assert stack_groups(configs) == [[0, 1, 2, 3, 4]]
    together = run_configs(configs, source)
    for config, shared in zip(configs, together):
        (alone,) = run_configs([config], source)
        assert [r.test_acc for r in shared.rounds] == [r.test_acc for r in alone.rounds]
        assert [r.train_loss for r in shared.rounds] == [r.train_loss for r in alone.rounds]
        for a, b in zip(shared.rounds, alone.rounds):
            assert all(np.array_equal(a.weights[name], b.weights[name]) for name in a.weights)
    assert len({tuple(r.test_acc for r in result.rounds) for result in together}) == len(configs)  # all differ


@pytest.mark.parametrize("by_layer", [False, True], ids=["one Adam call", "a call a layer"])
@pytest.mark.parametrize("subnet, weight_sharing", [("basic", False), ("fcn", True), ("fcn", False),
                                                     ("cnn", True), ("cnn", False)])
def test_training_settings_share_a_stack_each_with_the_numbers_it_gets_alone(source, monkeypatch, subnet,
                                                                              weight_sharing, by_layer):
    """Issue 21, item 2: a grid over the learning rate, its decay and dropout trains one stack; every replica
    steps with its own rate, scheduled by its own decay, drops units at its own rate (none at 0: a net without
    dropout stacks with nets with it), and ends bit for bit as trained alone, epoch by epoch."""
    import numpy as np

    from workbench.engine.adam import StackAdam

    monkeypatch.setenv("DIGIT_WORKBENCH_PROCESSES", "1")
    if by_layer:
        monkeypatch.setattr(StackAdam, "BY_LAYER_FROM", 0)
    base = RunConfig(subnet=subnet, weight_sharing=weight_sharing, aux_loss=subnet != "basic", hl=24, c_hl=12,
                     bc=3, rounds=2, epochs=3, pairs=100, batch_size=5, dropout=0.3, device=DEVICE.type)
    configs = [base.replace(dropout=0.0), base, base.replace(lr=0.003), base.replace(lr_decay=0.8),
               base.replace(lr=0.003, lr_decay=0.8, dropout=0.5), base.replace(lr=0.0005, seed=4, alpha=0.2),
               base.replace(dropout=0.1, repair=True)]
    assert stack_groups(configs) == [list(range(7))]
    records = []
    together = run_configs(configs, source, on_epoch=records.append)
    for i, (config, shared) in enumerate(zip(configs, together)):
        (alone,) = run_configs([config], source)
        assert [(r.test_acc, r.train_loss) for r in shared.rounds] == [(r.test_acc, r.train_loss) for r in alone.rounds]
        for a, b in zip(shared.rounds, alone.rounds):
            assert all(np.array_equal(a.weights[name], b.weights[name]) for name in a.weights)
        assert [(h.epoch, h.lr, h.train_loss) for h in shared.history] == [(h.epoch, h.lr, h.train_loss)
                                                                           for h in alone.history]
        assert [h.lr for h in shared.history if h.round == 0] == pytest.approx(
            [config.lr * config.lr_decay ** e for e in range(3)])
    assert len({tuple(r.train_loss for r in result.rounds) for result in together}) == len(configs)  # all differ


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
    assert time.monotonic() - set_at["t"] < 10  # stopped, not trained on (100 epochs would take minutes)
    assert [r.status for r in results] == ["cancelled", "cancelled"]


def test_the_longest_stacks_are_estimated_longest():
    from workbench.engine.scheduler import stack_cost
    from workbench.paper.presets import TABLE_II, find_preset

    configs = [find_preset(name).config for name in TABLE_II]
    cost = {TABLE_II[g[0]]: stack_cost(configs, g) for g in stack_groups(configs)}
    # measured on one core: CNN without sharing > CNN shared > FCN without sharing > FCN shared
    assert cost["table2-cnn-plain"] > cost["table2-cnn-ws"] > cost["table2-fcn-plain"] > cost["table2-fcn-ws"]
    wide = [configs[0].replace(hl=512)]
    assert stack_cost(wide, [0]) > stack_cost(configs[:1], [0])
    assert stack_cost([configs[0].replace(rounds=20)], [0]) > stack_cost(configs[:1], [0])


def test_the_digits_are_shared_before_any_process_starts(source, tiny, monkeypatch):
    """Sending tensors to a process moves them into shared memory and frees the old buffers; the calling
    thread trains meanwhile, so the move must be done before, not while it reads them."""
    from concurrent.futures import ProcessPoolExecutor

    from workbench.paper.data import DigitSet, DigitSource

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


def test_a_lone_stack_split_by_rounds_across_processes_gives_the_same_numbers(source, tiny, monkeypatch):
    """With a core idle, a costly stack trains half its rounds in a worker process; its figures, history and
    records are those of the whole stack trained in one place."""
    import workbench.engine.scheduler as scheduler

    config = tiny.replace(rounds=4)
    monkeypatch.setenv("DIGIT_WORKBENCH_PROCESSES", "1")
    whole = run_configs([config], source)[0]
    monkeypatch.delenv("DIGIT_WORKBENCH_PROCESSES")
    monkeypatch.setattr(scheduler, "SPLIT_WORTH_S", 0.0)
    assert [j.rounds for j in scheduler.plan_jobs([config], [[0]], 2)] == [range(0, 2), range(2, 4)]
    records, threads = [], set()

    def on_epoch(rec):
        threads.add(threading.current_thread().name)
        records.append(rec)

    split = run_configs([config], source, on_epoch=on_epoch)[0]
    assert "stack-dispatch" in threads  # half the rounds came from the worker process
    assert split.status == "done" and [r.round for r in split.rounds] == [0, 1, 2, 3]
    assert [(r.test_acc, r.train_loss, r.digit_acc) for r in split.rounds] == [
        (r.test_acc, r.train_loss, r.digit_acc) for r in whole.rounds]
    assert [(h.round, h.epoch, h.test_acc) for h in split.history] == [(h.round, h.epoch, h.test_acc) for h in whole.history]
    assert sorted((r.round, r.epoch) for r in records) == [(r, e) for r in range(4) for e in (1, 2)]


def test_only_costly_stacks_are_split_and_only_where_a_core_would_wait():
    from workbench.engine.scheduler import plan_jobs
    from workbench.paper.presets import TABLE_II, find_preset

    table2 = [find_preset(name).config for name in TABLE_II]
    assert len(plan_jobs(table2, stack_groups(table2), 2)) == 4  # four stacks already fill two cores
    small = find_preset("table2-fcn-ws").config
    assert len(plan_jobs([small], [[0]], 2)) == 1  # seconds of work: not worth a process start
    big = find_preset("table4-cnn-best").config
    assert [j.rounds for j in plan_jobs([big], [[0]], 2)] == [range(0, 5), range(5, 10)]
    assert len(plan_jobs([big], [[0]], 1)) == 1
    # a wide stack beside a small one: split, so that neither core waits for the other most of the call
    wide = [big.replace(alpha=a, rounds=4) for a in (0.2, 0.4, 0.6)] + [small]
    jobs = plan_jobs(wide, stack_groups(wide), 2)
    assert sorted((j.group, tuple(j.rounds)) for j in jobs) == [((0, 1, 2), (0, 1)), ((0, 1, 2), (2, 3)),
                                                                ((3,), tuple(range(10)))]
    assert len(plan_jobs(wide, stack_groups(wide), 1)) == 2  # one core: nothing to balance


@pytest.mark.parametrize("by_layer", [True, False])
@pytest.mark.parametrize("subnet", ["basic", "fcn", "cnn"])
def test_adam_layer_by_layer_is_one_fused_adam_over_all_weights(subnet, by_layer):
    """StackAdam steps each layer inside the backward pass; torch's fused Adam with ExponentialLR, one call over
    the flat weights after the backward, must give the very same bits, epoch decay included."""
    config = RunConfig(subnet=subnet, hl=24, kl=2, bc=3, c_hl=16, c_kl=1, weight_sharing=False, aux_loss=True,
                       lr=0.003, lr_decay=0.9)
    models = [init_model(config, r) for r in range(R)]
    mine, theirs = StackedNet(models, DEVICE, B), StackedNet(models, DEVICE, B)
    adam = StackAdam(mine, config.lr)
    adam.by_layer = by_layer  # a stack this small steps in one call unless told
    torch_adam = torch.optim.Adam([theirs.flat], lr=config.lr, fused=True)
    decay = torch.optim.lr_scheduler.ExponentialLR(torch_adam, gamma=config.lr_decay)
    w_bce, w_aux = loss_weights([config] * R, DEVICE)
    scales = step_scales(w_bce, w_aux, True, B)
    batches, draws = make_batches(6), step_draws(models, 6)
    for k, ((x, classes, target), d) in enumerate(zip(batches, draws)):
        onehot = F.one_hot(classes, 10).float()
        train_step(mine, adam, x, target, onehot, d, *scales)
        with torch.no_grad():
            tape: dict = {}
            out, digits = theirs.forward(x, d, tape)
            theirs.backward(tape, *loss_gradients(out, digits, target, onehot, *scales))
            torch_adam.step()
        if k % 2 == 1:  # an "epoch" of two steps: both decay their learning rate
            adam.decay(config.lr_decay)
            decay.step()
    assert adam.lr == torch_adam.param_groups[0]["lr"]
    assert torch.equal(mine.flat, theirs.flat)
    assert not torch.equal(mine.flat, StackedNet(models, DEVICE, B).flat)  # it trained


@pytest.mark.parametrize("subnet, aux, dropout, pairs", [("cnn", True, 0.3, 203), ("fcn", False, 0.3, 200),
                                                         ("basic", False, 0.0, 198)])
def test_an_epoch_as_one_program_trains_what_the_steps_train(source, monkeypatch, subnet, aux, dropout, pairs):
    """On a GPU the full steps of an epoch from the second on are one CUDA graph (cuda_graph.EpochProgram); here
    the same program runs eagerly: every epoch's figures, the predictions and the weights must be the ones the
    step-by-step loop gives, with a short last batch (pairs not a multiple of 5) and dropout drawn a block
    (16 steps) at a time."""
    from workbench.engine import batched

    config = RunConfig(subnet=subnet, aux_loss=aux, hl=24, c_hl=12, bc=3, rounds=2, epochs=3, pairs=pairs,
                       batch_size=5, dropout=dropout, lr_decay=0.8, device=DEVICE.type)  # on CUDA: graph vs steps

    def trained(whole_epochs):
        built = []
        real_init = batched.EpochTrainer.__init__

        def init(self, *args):
            real_init(self, *args)
            self.whole_epochs = whole_epochs
            built.append(self)

        monkeypatch.setattr(batched.EpochTrainer, "__init__", init)
        result = run_configs([config], source)[0]
        return result, built[0]

    (steps, by_steps), (program, by_program) = trained(False), trained(True)
    assert by_program.program is not None and by_steps.program is None  # the program did train epochs 2 and 3
    assert [(h.round, h.epoch, h.train_loss, h.train_acc, h.test_acc, h.digit_acc, h.lr) for h in program.history] == \
        [(h.round, h.epoch, h.train_loss, h.train_acc, h.test_acc, h.digit_acc, h.lr) for h in steps.history]
    assert torch.equal(by_program.net.flat, by_steps.net.flat)
    assert all((a.predictions.prob == b.predictions.prob).all() for a, b in zip(program.rounds, steps.rounds))


def test_stacks_on_a_gpu_train_one_at_a_time_unless_asked(monkeypatch):
    import workbench.engine.scheduler as scheduler

    monkeypatch.setattr(scheduler, "resolve_device", lambda name: torch.device("cuda"))
    configs = [RunConfig(subnet="cnn", device="cuda"), RunConfig(subnet="fcn", device="cuda")]
    monkeypatch.delenv("DIGIT_WORKBENCH_GPU_STACKS", raising=False)
    assert scheduler.cores_for(configs) == 1
    for asked, got in (("4", 4), ("0", 1), ("many", 1)):
        monkeypatch.setenv("DIGIT_WORKBENCH_GPU_STACKS", asked)
        assert scheduler.cores_for(configs) == got


def test_stacks_on_threads_give_the_numbers_they_give_alone(source, tiny):
    """scheduler.on_streams (stacks side by side on one GPU, a thread and a CUDA stream each) runs here on
    threads without streams: every stack's figures are the ones it gives alone, records arrive one at a time."""
    from workbench.engine import scheduler

    configs = [tiny.replace(hl=64), tiny, tiny.replace(subnet="cnn", bc=2), tiny.replace(aux_loss=False)]
    groups = stack_groups(configs)
    jobs = [scheduler.StackJob(k, tuple(g), range(configs[g[0]].rounds)) for k, g in enumerate(groups)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each stack sets one thread and puts back what it found: the same for all here
    try:
        received, inside = [], threading.Event()
        lock = threading.Lock()

        def on_epoch(rec):
            if not lock.acquire(blocking=False):
                inside.set()  # another record was being handled at the same moment
                return
            try:
                received.append(rec)
            finally:
                lock.release()

        finished = scheduler.on_streams(configs, jobs, source, on_epoch, None, 3, 0)
        alone = run_configs(configs, source)
    finally:
        torch.set_num_threads(threads)
    got = {i: r for job, results in finished for i, r in zip(job.group, results)}
    for i, config in enumerate(configs):
        assert [r.test_acc for r in got[i].rounds] == [r.test_acc for r in alone[i].rounds]
        assert [r.train_loss for r in got[i].rounds] == [r.train_loss for r in alone[i].rounds]
    assert not inside.is_set()
    assert len(received) == sum(c.rounds * c.epochs for c in configs)


def test_a_cancel_while_a_worker_process_starts_leaves_no_traceback_and_no_process(source, capfd):
    """SIGTERM 2.4 s into a two-stack `table`: the worker still starting read the shared digits after the command
    had let them go, and printed FileNotFoundError over the screen."""
    import multiprocessing
    import threading

    before = set(multiprocessing.active_children())
    configs = [RunConfig(subnet="cnn", rounds=2, epochs=5, device="cpu"),
               RunConfig(subnet="fcn", rounds=2, epochs=5, device="cpu")]
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()  # long before a spawned process is up
    results = run_configs(configs, source, cancel=cancel)
    assert [r.status for r in results] == ["cancelled", "cancelled"]
    time.sleep(3)  # what a process left running would print, it would have printed by now
    assert "Traceback" not in capfd.readouterr().err
    assert not set(multiprocessing.active_children()) - before


def same_round_numbers(a, b) -> None:
    """Bit for bit: every round's epochs, losses and accuracies, the validation scores, every epoch record."""
    assert a.status == b.status == "done"
    assert [(r.round, r.epochs, r.train_loss, r.test_acc, r.val_acc) for r in a.rounds] == \
        [(r.round, r.epochs, r.train_loss, r.test_acc, r.val_acc) for r in b.rounds]
    assert [(h.round, h.epoch, h.train_loss, h.test_acc) for h in a.history] == \
        [(h.round, h.epoch, h.train_loss, h.test_acc) for h in b.history]


@pytest.mark.parametrize("stopped, rounds", [({1}, 2), ({0, 2, 3}, 1)],
                         ids=["one of four", "three of four, leaving one replica"])
def test_a_pruned_run_leaves_its_stack_and_the_rest_train_on_as_alone(source, stopped, rounds):
    """Issue 21, pruning: a run stop_run names after an epoch leaves the stack there; the stack is built again
    from the others' states (down to one replica beside its copy) and they end exactly as trained alone."""
    base = RunConfig(subnet="fcn", hl=8, c_hl=4, rounds=rounds, epochs=4, pairs=100, batch_size=20,
                     device=DEVICE.type)
    # their rates, decays and dropout differ too: a stack built again keeps each replica's own (item 2)
    configs = [base.replace(alpha=0.2), base.replace(alpha=0.4, lr=0.003), base.replace(alpha=0.6, lr_decay=0.8),
               base.replace(alpha=0.8, dropout=0.0, lr=0.002, lr_decay=0.9)]
    seen = []
    results = run_configs(configs, source, validation=40, on_epoch=seen.append,
                          stop_run=lambda run: run in stopped and seen[-1].epoch >= 2)
    for i, (config, result) in enumerate(zip(configs, results)):
        if i in stopped:
            assert result.status == "pruned" and "after epoch 2" in result.reason
            assert {h.epoch for h in result.history} == {1, 2}
        else:
            same_round_numbers(result, run_configs([config], source, validation=40)[0])
    # a pruner needs each epoch's validation score: every record has one
    assert all(rec.val_acc is not None and 0.0 <= rec.val_acc <= 1.0 for rec in seen)


def test_the_pool_ends_while_a_process_still_has_records_to_send():
    """A process's last records (a round's states are megabytes) must be read before it can exit: the pool was
    once shut down without reading them, and the parent waited for ever on a process waiting on it."""
    from concurrent.futures import ProcessPoolExecutor

    import proctools

    from workbench.engine.scheduler import SideBySide
    from workbench.procs import spawn_context

    got = []
    side = SideBySide([], [], None, got.append, None, 2, 0)
    context = spawn_context()
    side.records = context.Queue()
    pool = ProcessPoolExecutor(1, mp_context=context, initializer=proctools.keep_records, initargs=(side.records,))
    size = 4 << 20  # far more than a pipe holds: the process's queue thread blocks until it is read
    assert pool.submit(proctools.put_records, size).result(timeout=120) == size
    closing = threading.Thread(target=side._shut_down, args=(pool,), daemon=True)
    closing.start()
    closing.join(60)
    stuck = closing.is_alive()
    if stuck:  # leave no process behind for the tests after this one
        for process in pool._processes.values():
            process.kill()
    assert not stuck, "the pool's shutdown waited for ever on a process that could not send its records"
    assert got == [b"x" * size]
