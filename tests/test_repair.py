"""Re-pairing (beyond the paper): each epoch the round's training digits are paired anew. Only those digits are
used, targets follow the ≤ rule, the same seed gives the same pairs, and off changes nothing."""

from __future__ import annotations

import pytest
import torch

from workbench.paper.config import RunConfig
from workbench.paper.data import repaired, round_pairs
from workbench.paper.presets import load_presets


def digit_multiset(pairs) -> list:
    """Each digit of a pair set as (class, image bytes), sorted: what is used, whatever the pairing."""
    n = len(pairs)
    images = pairs.input.reshape(2 * n, -1)
    classes = pairs.classes.reshape(2 * n)
    return sorted((int(c), bytes(img.to(torch.uint8).numpy())) for c, img in zip(classes, images))


def test_only_the_rounds_training_digits_are_used_each_once_with_the_rule(source):
    train, test = round_pairs(source, 200, seed=3, round_index=1)
    for epoch in (1, 2, 7):
        new = repaired(train, 3, 1, epoch)
        assert new.input.shape == train.input.shape and new.classes.shape == train.classes.shape
        assert digit_multiset(new) == digit_multiset(train)  # no test digit, no other training digit
        assert torch.equal(new.target, (new.classes[:, 0] <= new.classes[:, 1]).to(new.target.dtype))
    test_digits = set(digit_multiset(test))
    assert not test_digits & set(digit_multiset(repaired(train, 3, 1, 1)))


def test_the_same_seed_round_and_epoch_give_the_same_pairs_and_others_do_not(source):
    train, _ = round_pairs(source, 200, seed=3, round_index=1)
    a, b = repaired(train, 3, 1, 4), repaired(train, 3, 1, 4)
    assert torch.equal(a.input, b.input) and torch.equal(a.classes, b.classes)
    assert not torch.equal(a.classes, repaired(train, 3, 1, 5).classes)  # a new pairing each epoch
    assert not torch.equal(a.classes, repaired(train, 4, 1, 4).classes)
    assert not torch.equal(a.classes, train.classes)


def test_off_is_todays_training_and_every_paper_preset_is_off(source):
    from workbench.engine import run_configs

    for preset in load_presets().values():
        if preset.paper is not None:  # a row of the paper's tables
            assert preset.config.repair is False
    base = RunConfig(hl=16, c_hl=8, rounds=2, epochs=2, pairs=100, batch_size=20, device="cpu")
    off, on = run_configs([base, base.replace(repair=True)], source)
    (alone,) = run_configs([base], source)
    assert off.test_accuracies() == alone.test_accuracies()
    assert [r.train_loss for r in off.rounds] == [r.train_loss for r in alone.rounds]
    assert [r.train_loss for r in on.rounds] != [r.train_loss for r in off.rounds]  # on trains on other pairs


@pytest.mark.parametrize("subnet", ["basic", "fcn", "cnn"])
def test_both_engines_re_pair_alike(source, subnet):
    from engines import assert_engines_agree

    assert_engines_agree(RunConfig(subnet=subnet, hl=16, c_hl=8, bc=2, rounds=2, epochs=2, pairs=100, batch_size=20,
                                   dropout=0.0, device="cpu", repair=True, aux_loss=subnet != "basic",
                                   weight_sharing=subnet != "basic"), source)


def test_re_pairing_is_a_flag_a_record_field_and_sweepable(tmp_path, capsys):
    from workbench.cli.entry import main
    from workbench.sweep.spec import SWEEPABLE

    assert {"repair", "batch_size", "lr", "lr_decay", "epochs"} <= SWEEPABLE
    assert main(["run", "--repair", "--rounds", "1", "--epochs", "1", "--pairs", "100", "--batch-size", "20",
                 "--hl", "8", "--data", "embedded", "--runs-dir", str(tmp_path), "--name", "re-paired"]) == 0
    import json

    (config,) = [json.loads(p.read_text())["config"] for p in tmp_path.glob("*/summary.json")]
    assert config["repair"] is True
    import csv

    out = tmp_path / "export.csv"
    assert main(["export", "--runs-dir", str(tmp_path), "--out", str(out)]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["repair"] == "True"
