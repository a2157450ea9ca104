"""What a run gets wrong and how two runs differ, against values worked out by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from workbench.analysis.paired import all_pairs, compare_runs
from workbench.analysis.predictions import (PredictionsUnreadable, RunPredictions, digit_confusion, error_grid,
                                            error_rate, load_predictions, misclassified, per_digit_accuracy, samples)
from workbench.format import comparison_cells
from workbench.paper.config import RunConfig


def run(name, scores, seed=0, source="embedded", pairs=1000, statuses=None):
    statuses = statuses or ["done"] * len(scores)
    return SimpleNamespace(name=name, data_source=source, config=RunConfig(seed=seed, pairs=pairs),
                           rounds=[{"round": r, "status": st, "test_acc": s} for r, (s, st) in
                                   enumerate(zip(scores, statuses))])


def test_a_paired_comparison_by_hand():
    a, b = run("a", [0.80, 0.82, 0.85]), run("b", [0.78, 0.80, 0.80])
    c = compare_runs(a, b)
    # differences 2, 2, 5 points: mean 3, sd sqrt(3), se 1, t = 3 with 2 degrees of freedom
    assert c.paired and c.n == 3 and c.wins == 3 and c.ties == 0
    assert c.mean_diff == pytest.approx(3.0)
    t975 = 4.302652729749464  # Student's t, 97.5 %, 2 df (tables)
    assert c.ci == pytest.approx((3.0 - t975, 3.0 + t975))
    assert c.p == pytest.approx(0.0955, abs=5e-4)  # two-sided p of t = 3, df = 2: 1 - 3/sqrt(11) = 0.0955
    assert comparison_cells(c) == ("a − b", "+3.0", "[-1.3, +7.3]", "0.095", "—", "3/3", "paired")


def test_rounds_pair_by_round_number_and_only_finished_rounds_count():
    a = run("a", [0.80, 0.82, 0.85, 0.90], statuses=["done", "done", "done", "cancelled"])
    b = run("b", [0.78, 0.80, 0.80, 0.10])
    c = compare_runs(a, b)
    assert c.paired and c.n == 3 and c.mean_diff == pytest.approx(3.0)


def test_different_seeds_fall_back_to_welch_and_say_why():
    a, b = run("a", [0.80, 0.82, 0.85]), run("b", [0.78, 0.80, 0.80], seed=7)
    c = compare_runs(a, b)
    assert not c.paired and c.why_unpaired == "different seeds" and c.wins is None
    # by hand: means 82.33 and 79.33; variances 6.333 and 1.333; se^2 = 6.333/3 + 1.333/3 = 2.5556
    va, vb = 19 / 3 / 3, 4 / 3 / 3
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    assert df == pytest.approx(2.806, abs=1e-3)
    assert c.mean_diff == pytest.approx(3.0)
    from scipy import stats

    assert c.p == pytest.approx(2 * stats.t.sf(3.0 / se, df))
    assert comparison_cells(c)[-1].startswith("Welch: different seeds")
    assert compare_runs(a, run("b", [0.78, 0.80, 0.80], source="mnist")).why_unpaired == "different digits"
    assert compare_runs(a, run("b", [0.78, 0.80, 0.80], pairs=500)).why_unpaired == "different numbers of pairs"


def test_identical_runs_and_too_few_rounds():
    a = run("a", [0.8, 0.9])
    same = compare_runs(a, run("b", [0.8, 0.9]))
    assert same.mean_diff == 0 and same.p == 1.0 and same.ties == 2 and same.wins == 0
    one = compare_runs(run("a", [0.8]), run("b", [0.7]))
    assert one.mean_diff is None and comparison_cells(one)[1:4] == ("—", "—", "—")
    assert [(c.a, c.b) for c in all_pairs([run("x", [0.8]), run("y", [0.8]), run("z", [0.8])])] == [
        ("y", "x"), ("z", "x"), ("z", "y")]


def hand_predictions() -> RunPredictions:
    # two rounds of three pairs; round 0: (3, 5) right, (7, 7) wrong, (9, 1) right; round 1: (3, 5) wrong, ...
    classes = np.array([[[3, 5], [7, 7], [9, 1]], [[3, 5], [0, 2], [9, 1]]])
    target = (classes[..., 0] <= classes[..., 1]).astype(int)
    prob = np.array([[0.9, 0.2, 0.1], [0.3, 0.6, 0.45]], dtype=np.float32)
    digit_pred = np.array([[[3, 5], [7, 1], [9, 1]], [[3, 3], [0, 2], [4, 1]]])
    images = np.zeros((6, 2, 14, 14), np.uint8)
    return RunPredictions(np.array([0, 1]), prob, classes, target, digit_pred,
                          np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 2, 0, 1, 2]), images)


def test_error_heatmap_and_confusion_counts_by_hand():
    p = hand_predictions()
    errors, counts = error_grid(p)
    assert counts[3, 5] == 2 and counts[7, 7] == 1 and counts[9, 1] == 2 and counts[0, 2] == 1 and counts.sum() == 6
    assert errors[3, 5] == 1 and errors[7, 7] == 1 and errors[9, 1] == 0 and errors[0, 2] == 0
    rate = error_rate(errors, counts)
    assert rate[3, 5] == 0.5 and rate[7, 7] == 1.0 and math.isnan(rate[1, 1])
    confusion = digit_confusion(p)
    assert confusion.sum() == 12 and confusion[7, 1] == 1 and confusion[5, 3] == 1 and confusion[9, 4] == 1
    accuracy = per_digit_accuracy(confusion)
    assert accuracy[3] == 1.0 and accuracy[9] == 0.5 and accuracy[7] == 0.5
    wrong = misclassified(p)
    assert {(v.round, v.pair) for v in wrong} == {(0, 1), (1, 0)}
    assert wrong[0].prob == pytest.approx(0.2)  # the most confidently wrong first
    assert [(v.digits, v.target) for v in samples(p, 1)] == [((3, 5), 1), ((0, 2), 1), ((9, 1), 0)]


def test_a_run_records_its_predictions_and_they_agree_with_its_accuracy(tmp_path, source):
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    config = RunConfig(hl=16, c_hl=8, rounds=2, epochs=2, pairs=100, batch_size=20, device="cpu")
    for engine in ("batched", "loop"):
        (result,) = run_configs([config], source, engine=engine)
        summary = save_run(result, engine, root=tmp_path)
        p = load_predictions(summary.path)
        assert list(p.rounds) == [0, 1] and p.prob.shape == (2, 100) and p.digit_pred.shape == (2, 100, 2)
        for i, r in enumerate(result.rounds):
            assert 1 - p.wrong[i].mean() == pytest.approx(r.test_acc, abs=0.011)  # float16 probabilities
            assert (p.target[i] == (p.classes[i, :, 0] <= p.classes[i, :, 1])).all()
        assert len(misclassified(p, 1000)) >= min(p.wrong.sum(), 1)
        assert (p.images.max() > 100) and p.images.dtype == np.uint8  # the digits themselves, 0..255


def test_a_damaged_predictions_file_is_named(tmp_path):
    (tmp_path / "predictions.npz").write_bytes(b"not a zip")
    with pytest.raises(PredictionsUnreadable, match="predictions.npz"):
        load_predictions(tmp_path)
    assert load_predictions(tmp_path / "absent") is None


def test_holm_adjusts_p_step_down_as_worked_by_hand():
    from workbench.analysis.paired import holm

    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): x4 = 0.02, x3 = 0.03, x2 = 0.06, x1 = 0.04 -> kept at 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.4]) == pytest.approx([0.8, None, 0.8])  # no test is not counted
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # at most 1
    assert holm([]) == []


def test_several_pairs_carry_holm_p_and_one_pair_does_not():
    from workbench.analysis.paired import holm

    runs = [run(name, [0.80 + 0.01 * ((k * r) % 3) + 0.002 * k for r in range(6)]) for k, name in enumerate("abcd")]
    pairs = all_pairs(runs)
    assert len(pairs) == 6
    assert [c.p_holm for c in pairs] == pytest.approx(holm([c.p for c in pairs]))
    assert all(c.p_holm >= c.p for c in pairs if c.p is not None)
    assert all_pairs(runs[:2])[0].p_holm is None  # one test: nothing to adjust for


def test_the_time_axis_sums_each_rounds_epoch_times_and_reads_as_the_train_time_when_given_it():
    from workbench.analysis.curves import Curves

    row = lambda r, e, s: {"round": r, "epoch": e, "train_loss": 0.5, "train_acc": 0.5, "test_acc": 0.5,  # noqa: E731
                           "digit_acc": None, "seconds": s}
    curves = Curves.of([row(0, 1, 2.0), row(0, 2, 3.0), row(1, 1, 4.0), row(1, 2, 1.0), row(1, 3, 5.0)])
    # round 0 ends epochs at 2 and 5 s, round 1 at 4, 5 and 10 s: the mean over the rounds that reached each epoch
    assert curves.time_axis() == pytest.approx({1: 3.0, 2: 5.0, 3: 10.0})
    # a record's train time (its share of a stack's clock) puts the last epoch there, the rest in proportion
    assert curves.time_axis(total=20.0) == pytest.approx({1: 6.0, 2: 10.0, 3: 20.0})
    # an epoch without a clocked time (an older record, or a NaN) has no place on the axis, and is no zero
    older = Curves.of([{**row(0, 1, 1.0)}, {k: v for k, v in row(0, 2, 0).items() if k != "seconds"},
                       row(1, 1, math.nan)])
    assert older.time_axis() == {1: 1.0}
    assert Curves().time_axis(total=5.0) == {}


def test_smoothing_is_an_exponential_moving_average_per_round_as_worked_by_hand():
    from workbench.analysis.curves import Curves

    series = {0: {1: 1.0, 2: 0.0, 3: 0.0}, 1: {1: 2.0, 3: 4.0, 2: None}}
    smooth = Curves.smoothed(series, 0.5)
    assert smooth[0] == pytest.approx({1: 1.0, 2: 0.5, 3: 0.25})  # 0.5 * previous + 0.5 * value
    assert smooth[1] == pytest.approx({1: 2.0, 3: 3.0})  # a missing epoch is skipped, not a zero
    assert Curves.smoothed(series, 0.0) is series
