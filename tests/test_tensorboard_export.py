"""`export --tensorboard`: TensorBoard's own reader reads back every curve point a record holds, its final score
and its figure."""

from __future__ import annotations

import pytest

from workbench.cli.entry import main
from workbench.paper.config import RunConfig
from workbench.records.store import load_runs, readable_history

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_back(folder):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0,
                                                                          event_accumulator.IMAGES: 0})
    acc.Reload()
    return acc


def test_crc32c_is_the_castagnoli_checksum():
    from workbench.export.tensorboard import crc32c, masked_crc

    assert crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C
    assert crc32c(b"") == 0 and masked_crc(b"") == 0xA282EAD8


def test_every_curve_point_and_the_final_score_read_back_through_tensorboard(tmp_path, source, capsys):
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    runs = tmp_path / "runs"
    configs = {"with aux": RunConfig(hl=16, c_hl=8, rounds=3, epochs=2, pairs=100, batch_size=20, device="cpu"),
               "no aux [x]/y": RunConfig(hl=16, c_hl=8, rounds=2, epochs=3, pairs=100, batch_size=20, device="cpu",
                                         aux_loss=False)}
    for (name, _), result in zip(configs.items(), run_configs(list(configs.values()), source)):
        save_run(result, name, root=runs)
    board = tmp_path / "board"
    assert main(["export", "--runs-dir", str(runs), "--tensorboard", str(board)]) == 0
    assert "wrote 2 runs as TensorBoard event files" in capsys.readouterr().out
    assert not (tmp_path / "runs-export.csv").exists()  # only what was asked for
    summaries = load_runs(runs)[0]
    folders = sorted(p.name for p in board.iterdir())
    assert len(folders) == 2 and all("/" not in f and "[" not in f for f in folders)
    for summary in summaries:
        (folder,) = [board / f for f in folders if f.endswith(summary.id[-6:])]
        acc = read_back(folder)
        history = readable_history(summary)
        keys = {"test accuracy": "test_acc", "train loss": "train_loss", "train accuracy": "train_acc"}
        if summary.config.aux_loss:
            keys["digit accuracy"] = "digit_acc"
        else:
            assert not any(tag.startswith("digit accuracy") for tag in acc.Tags()["scalars"])
        for label, column in keys.items():
            for r in range(summary.config.rounds):
                points = {(e.step, round(e.value, 5)) for e in acc.Scalars(f"{label}/round {r}")}
                want = {(int(h["epoch"]), round(float(h[column]), 5)) for h in history if int(h["round"]) == r}
                assert points == want, (summary.name, label, r)
            means = acc.Scalars(f"{label}/mean over rounds")
            assert [e.step for e in means] == sorted({int(h["epoch"]) for h in history})
        (mean,) = acc.Scalars("final/test accuracy mean")
        assert mean.value == pytest.approx(summary.mean, abs=1e-6)
        (figure,) = acc.Images("figures/curves, rounds and errors")
        assert figure.encoded_image_string.startswith(b"\x89PNG") and figure.width > 100
    # exporting again replaces each run's file, never adds a second
    assert main(["export", "--runs-dir", str(runs), "--tensorboard", str(board), "--out",
                 str(tmp_path / "also.csv")]) == 0
    assert all(len(list((board / f).iterdir())) == 1 for f in folders) and (tmp_path / "also.csv").exists()
