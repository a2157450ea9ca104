"""The engine contract, for both engines: results, callbacks, cancellation, failures, devices."""

import threading
import time

import pytest
import torch

from workbench.engine import EngineError, run_configs, stack_groups
from workbench.engine import loss as equation1
from workbench.engine.base import resolve_device
from workbench.paper.config import RunConfig

ENGINES = ["loop", "batched"]


@pytest.mark.parametrize("engine", ENGINES)
def test_short_training_clearly_beats_chance(source, engine):
    config = RunConfig(subnet="fcn", rounds=2, epochs=2, device="cpu")
    result = run_configs([config], source, engine=engine)[0]
    assert result.status == "done"
    mean, std = result.mean_std()
    assert mean > 0.70, mean  # chance is about 0.55 (ties count as "first <= second")
    assert len(result.rounds) == 2 and std is not None
    assert result.rounds[0].digit_acc > 0.5  # the auxiliary loss taught the subnets digits


@pytest.mark.parametrize("engine", ENGINES)
def test_callback_reports_every_round_and_epoch(source, tiny, engine):
    records = []
    result = run_configs([tiny], source, on_epoch=records.append, engine=engine)[0]
    assert sorted((r.round, r.epoch) for r in records) == [(r, e) for r in range(2) for e in (1, 2)]
    rec = records[-1]
    assert 0 <= rec.train_acc <= 1 and 0 <= rec.test_acc <= 1 and rec.train_loss > 0 and rec.seconds > 0
    first_epoch = [r for r in records if r.epoch == 1]
    second_epoch = [r for r in records if r.epoch == 2]
    assert second_epoch[0].lr == pytest.approx(first_epoch[0].lr * tiny.lr_decay)
    assert result.history == records
    assert result.data_source == source.name and result.device.startswith("cpu")
    assert result.versions["torch"] == torch.__version__


@pytest.mark.parametrize("engine", ENGINES)
def test_same_seed_same_result_on_cpu(source, tiny, engine):
    a = run_configs([tiny], source, engine=engine)[0]
    b = run_configs([tiny], source, engine=engine)[0]
    c = run_configs([tiny.replace(seed=1)], source, engine=engine)[0]
    assert a.test_accuracies() == b.test_accuracies()
    assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]
    assert a.test_accuracies() != c.test_accuracies()


@pytest.mark.parametrize("engine", ENGINES)
def test_cancel_from_another_thread_stops_within_a_second(source, engine):
    config = RunConfig(subnet="cnn", rounds=3, epochs=50, device="cpu")
    cancel = threading.Event()
    records = []

    def on_epoch(rec):
        records.append(rec)
        if len(records) == 1:
            threading.Timer(0.05, cancel.set).start()

    holder = {}
    worker = threading.Thread(target=lambda: holder.setdefault(
        "result", run_configs([config], source, on_epoch=on_epoch, cancel=cancel, engine=engine)[0]))
    worker.start()
    deadline = time.monotonic() + 60
    while not cancel.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    set_at = time.monotonic()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - set_at < 10  # stopped, not trained on: the time itself is not a unit test
    result = holder["result"]
    assert result.status == "cancelled"
    assert result.history  # the partial history is kept


def nan_after(calls_before_nan):
    """A pair loss that turns NaN after some calls, standing in for a diverging run."""
    real = equation1.pair_loss
    state = {"calls": 0}

    def loss(*args, **kwargs):
        state["calls"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if state["calls"] > calls_before_nan else value

    return loss


def test_loop_nan_loss_fails_the_run_with_the_reason(source, tiny, monkeypatch):
    import workbench.engine.loop as loop

    monkeypatch.setattr(loop, "pair_loss", nan_after(30))
    result = run_configs([tiny], source, engine="loop")[0]
    assert result.status == "failed"
    assert "nan" in result.reason and "round 0" in result.reason


def test_batched_nan_in_one_replica_keeps_the_others(source, tiny, monkeypatch):
    import workbench.engine.stacked as batched

    real = batched.loss_gradients

    def poisoned(*args, **kwargs):  # round 1 diverges: its gradients, then its weights and loss become NaN
        g_out, g_digits = real(*args, **kwargs)
        nan = torch.tensor([1.0, float("nan")])
        return g_out * nan[:, None], None if g_digits is None else g_digits * nan.view(-1, 1, 1, 1)

    monkeypatch.setattr(batched, "loss_gradients", poisoned)
    result = run_configs([tiny], source, engine="batched")[0]
    assert result.status == "failed" and "round 1" in result.reason and "nan" in result.reason
    done = [r for r in result.rounds if r.status == "done"]
    assert [r.round for r in done] == [0] and done[0].test_acc > 0.5
    assert result.test_accuracies() == [done[0].test_acc]
    assert {rec.round for rec in result.history} == {0}


def test_asking_for_cuda_without_it_is_a_clear_error(source, tiny, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineError, match="cuda is not available"):
        run_configs([tiny.replace(device="cuda")], source)
    assert resolve_device("auto").type == "cpu"


def test_an_exception_during_training_becomes_a_failed_run(source, tiny, monkeypatch):
    import workbench.engine.stacked as batched

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(batched, "loss_gradients", out_of_memory)
    results = run_configs([tiny, tiny.replace(aux_loss=False)], source)
    assert [r.status for r in results] == ["failed", "failed"]
    assert "out of memory" in results[0].reason


@pytest.mark.parametrize("engine", ["batched", "loop"])
def test_a_diverged_round_fails_with_the_reason(source, tiny, engine):
    """--lr 10: the loss runs away while the rounds still finish; no mean may silently average them."""
    result = run_configs([tiny.replace(lr=10.0, epochs=3)], source, engine=engine)[0]
    assert result.status == "failed" and "diverged" in result.reason and "lower learning rate" in result.reason
    assert result.test_accuracies() == []
    sane = run_configs([tiny], source, engine=engine)[0]
    assert sane.status == "done"


def test_what_will_not_fit_in_memory_is_refused_before_anything_trains(source, monkeypatch):
    import time

    import workbench.engine.scheduler as scheduler
    from workbench.paper.presets import TABLE_II, find_preset

    monkeypatch.setattr(scheduler, "available_bytes", lambda: 4 * 2 ** 30)
    huge = RunConfig(hl=4096, kl=8, c_hl=4096, c_kl=8, weight_sharing=False, device="cpu")
    started = time.monotonic()
    with pytest.raises(EngineError) as err:
        run_configs([huge], source)
    assert "memory" in str(err.value) and "GB are available" in str(err.value) and "354.2 M weights" in str(err.value)
    assert time.monotonic() - started < 30  # refused, not attempted (an attempt would swap for minutes)
    table2 = [find_preset(name).config for name in TABLE_II]  # what the product is for fits in 4 GB
    jobs = scheduler.plan_jobs(table2, stack_groups(table2), 2)
    scheduler.check_memory(table2, jobs, 2)


@pytest.mark.parametrize("rates", [2, 3])
@pytest.mark.parametrize("subnet, weight_sharing", [("fcn", True), ("cnn", True), ("cnn", False)])
def test_a_stack_of_several_learning_rates_is_counted_with_the_buffers_it_keeps(rates, subnet, weight_sharing):
    """Issue 21, item 2: replicas of several rates keep more; the memory check counts at least that."""
    import torch

    import workbench.engine.scheduler as scheduler
    from workbench.engine.adam import StackAdam
    from workbench.engine.stacked import StackedNet
    from workbench.paper.randomness import init_model

    base = RunConfig(subnet=subnet, weight_sharing=weight_sharing, hl=32, c_hl=16, bc=3, rounds=1, device="cpu")
    configs = [base.replace(lr=0.001 * (k + 1)) for k in range(rates)]
    job = scheduler.StackJob(0, tuple(range(rates)), range(1))
    alike = scheduler.job_bytes([base] * rates, job)
    extra = scheduler.job_bytes(configs, job) - alike
    net = StackedNet([init_model(c, 0) for c in configs], torch.device("cpu"), 5)
    adam = StackAdam(net, [c.lr for c in configs])
    net.flat.grad.normal_()
    adam.begin_step()
    adam.step_all()
    kept = adam.segments
    mixed = [s for _, segments in adam.calls.values() for s in segments]
    assert bool(mixed) == (subnet == "cnn")  # rates meet inside a line only in convolutions
    held = kept.owner.nbytes + sum(b.numel() * 4 for s in mixed for b in s.before + s.copy) + sum(
        i.numel() * 8 for s in mixed for i in s.indices)
    assert 0 < held <= extra
