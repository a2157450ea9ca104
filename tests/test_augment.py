"""Augmentation (beyond the paper): each epoch every training digit moved by whole pixels and turned, from the
replica's own counter-based streams; same config and seed, same numbers; both engines alike; the test digits
never touched; off, exactly the training without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.cli.entry import main
from workbench.paper.config import RunConfig
from workbench.paper.data import augmented, round_pairs
from workbench.paper.presets import load_presets
from workbench.paper.randomness import augment_draws

BASE = RunConfig(hl=16, c_hl=8, rounds=2, epochs=2, pairs=100, batch_size=20, device="cpu")


def test_off_is_the_pairs_themselves_and_every_paper_preset_is_off(source):
    train = round_pairs(source, 100, 0, 0)[0]
    assert augmented(train, BASE, 0, 1) is train
    for preset in load_presets().values():
        if preset.paper is not None:
            assert preset.config.shift == 0 and preset.config.rotate == 0.0


def test_a_shift_moves_each_digit_by_its_own_whole_pixels(source):
    train = round_pairs(source, 100, 0, 1)[0]
    config = BASE.replace(shift=2)
    moved = augmented(train, config, 1, 3).input
    shifts, _ = augment_draws(config, 1, 3, 100)
    for i in range(20):
        for side in (0, 1):
            dx, dy = shifts[i, side].tolist()
            want = torch.zeros(14, 14)
            src = train.input[i, side]
            ys, xs = slice(max(dy, 0), 14 + min(dy, 0)), slice(max(dx, 0), 14 + min(dx, 0))
            from_ys, from_xs = slice(max(-dy, 0), 14 + min(-dy, 0)), slice(max(-dx, 0), 14 + min(-dx, 0))
            want[ys, xs] = src[from_ys, from_xs]
            assert torch.allclose(moved[i, side], want, atol=1e-3), (i, side, dx, dy)
    assert shifts.abs().max() == 2 and (shifts != 0).any()


def test_turns_keep_the_ink_and_are_drawn_anew_each_epoch_and_round(source):
    train = round_pairs(source, 100, 0, 0)[0]
    config = BASE.replace(rotate=20.0)
    turned = augmented(train, config, 0, 1).input
    assert not torch.equal(turned, train.input)
    ink = train.input.sum(dim=(-1, -2))
    assert torch.allclose(turned.sum(dim=(-1, -2)), ink, rtol=0.15)  # a turn moves ink, barely loses it
    _, turns = augment_draws(config, 0, 1, 100)
    assert turns.abs().max() <= 20.0 and turns.abs().max() > 10.0
    assert torch.equal(augmented(train, config, 0, 1).input, turned)  # same seed, round, epoch: same moves
    assert not torch.equal(augment_draws(config, 0, 2, 100)[1], turns)  # a new epoch: new moves
    assert not torch.equal(augment_draws(config, 1, 1, 100)[1], turns)  # another round: its own
    assert torch.equal(augmented(train, config, 0, 1).classes, train.classes)


def test_same_config_and_seed_same_numbers_whatever_trains_beside_it(source):
    from workbench.engine import run_configs

    config = BASE.replace(shift=1, rotate=10.0)
    (alone,) = run_configs([config], source)
    again, other = run_configs([config, config.replace(shift=0, rotate=0.0)], source)
    assert alone.test_accuracies() == again.test_accuracies()
    assert [r.train_loss for r in alone.rounds] == [r.train_loss for r in again.rounds]
    assert [r.train_loss for r in other.rounds] != [r.train_loss for r in alone.rounds]


@pytest.mark.parametrize("subnet", ["basic", "fcn", "cnn"])
def test_both_engines_augment_alike(source, subnet):
    from engines import assert_engines_agree

    assert_engines_agree(BASE.replace(subnet=subnet, bc=2, dropout=0.0, shift=1, rotate=12.0,
                                      aux_loss=subnet != "basic", weight_sharing=subnet != "basic"), source)


def test_the_test_digits_are_never_moved(source, tmp_path):
    from workbench.analysis.predictions import load_predictions
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    config = BASE.replace(shift=3, rotate=30.0)
    summary = save_run(run_configs([config], source)[0], "moved", root=tmp_path)
    kept = load_predictions(summary.path)
    for r in range(2):
        test = round_pairs(source, config.pairs, config.seed, r)[1]
        at = kept.image_pair[kept.image_round == r]
        shown = kept.images[kept.image_round == r]
        assert np.array_equal(shown, test.input[at].round().clamp(0, 255).to(torch.uint8).numpy())


def test_a_flag_a_record_field_a_name_and_sweepable(tmp_path, capsys):
    from workbench.sweep.spec import SWEEPABLE

    assert {"shift", "rotate"} <= SWEEPABLE
    at = ["--runs-dir", str(tmp_path / "runs"), "--rounds", "1", "--epochs", "1", "--pairs", "100", "--hl", "16",
          "--c-hl", "8"]
    assert main(["run", "--preset", "table2-fcn-ws-aux", "--shift", "2", "--rotate", "10", *at]) == 0
    from workbench.records.csv_export import export_csv
    from workbench.records.store import load_runs

    (summary,) = load_runs(tmp_path / "runs")[0]
    assert (summary.config.shift, summary.config.rotate) == (2, 10.0)
    assert summary.name.startswith("table2-fcn-ws-aux shift 2 rotate 10")
    import csv

    row = next(csv.DictReader(export_csv([summary], tmp_path / "x.csv").open()))
    assert (row["shift"], row["rotate"]) == ("2", "10.0")
    assert main(["run", "--shift", "5", *at]) == 2
    assert "--shift" in capsys.readouterr().err
