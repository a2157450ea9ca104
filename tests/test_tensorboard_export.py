"""`export --tensorboard`: TensorBoard's own reader reads back every curve point a record holds, its final score,
its settings as HParams, its config as text and its figure."""

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


def hparams_read_back(acc):
    """The run's HParams as TensorBoard's plugin reads them: its settings and the metrics the experiment names."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    values = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    return values, {m.name.tag for m in experiment.metric_infos}


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
        keys = {"test_accuracy": "test_acc", "train_loss": "train_loss", "train_accuracy": "train_acc"}
        if summary.config.aux_loss:
            keys["digit_accuracy"] = "digit_acc"
        else:
            assert not any(tag.startswith("digit_accuracy") for tag in acc.Tags()["scalars"])
        for label, column in keys.items():
            for r in range(summary.config.rounds):
                points = {(e.step, round(e.value, 5)) for e in acc.Scalars(f"{label}/round_{r}")}
                want = {(int(h["epoch"]), round(float(h[column]), 5)) for h in history if int(h["round"]) == r}
                assert points == want, (summary.name, label, r)
            means = acc.Scalars(f"{label}/mean_over_rounds")
            assert [e.step for e in means] == sorted({int(h["epoch"]) for h in history})
        (mean,) = acc.Scalars("final/test_accuracy_mean")
        assert mean.value == pytest.approx(summary.mean, abs=1e-6)
        hparams, metrics = hparams_read_back(acc)
        config = summary.config.to_dict()
        assert hparams["aux_loss"] is config["aux_loss"] and hparams["hl"] == config["hl"] == 16
        assert hparams["alpha"] == pytest.approx(config["alpha"]) and hparams["subnet"] == "fcn"
        assert set(hparams) == set(config) | {"engine"} and hparams["device"] == summary.device
        assert metrics == {"final/test_accuracy_mean", "final/test_accuracy_std"}
        (text,) = acc.Tensors("record/text_summary")
        shown = text.tensor_proto.string_val[0].decode()
        assert summary.name in shown and f"\"rounds\": {summary.config.rounds}" in shown and "where it ran" in shown
        (figure,) = acc.Images("figures/curves_rounds_and_errors")
        assert figure.encoded_image_string.startswith(b"\x89PNG") and figure.width > 100
    # exporting again replaces each run's file, never adds a second
    assert main(["export", "--runs-dir", str(runs), "--tensorboard", str(board), "--out",
                 str(tmp_path / "also.csv")]) == 0
    assert all(len(list((board / f).iterdir())) == 1 for f in folders) and (tmp_path / "also.csv").exists()


def test_a_write_cut_short_keeps_the_earlier_export_and_leaves_no_scratch(tmp_path, command_record, capsys,
                                                                          monkeypatch):
    import shutil

    from workbench.export import tensorboard

    runs = tmp_path / "runs"
    shutil.copytree(command_record, runs / command_record.name)
    board = tmp_path / "board"
    assert main(["export", "--runs-dir", str(runs), "--tensorboard", str(board)]) == 0
    (folder,) = board.iterdir()
    (first,) = folder.iterdir()
    before = first.read_bytes()

    def full_disk(summary, scratch, png):
        (scratch / "events.out.tfevents.1.vm.digit-workbench").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensorboard, "write_run", full_disk)
    capsys.readouterr()
    assert main(["export", "--runs-dir", str(runs), "--tensorboard", str(board)]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [f"digit-workbench: error: --tensorboard: cannot write {board}: No space left on device"]
    assert [p.name for p in board.iterdir()] == [folder.name]  # no scratch folder left beside the runs
    assert list(folder.iterdir()) == [first] and first.read_bytes() == before


def test_a_link_where_a_run_folder_goes_is_left_alone(tmp_path, command_record, capsys):
    import shutil

    from workbench.export.tensorboard import run_folder
    from workbench.records.store import load_runs

    runs = tmp_path / "runs"
    shutil.copytree(command_record, runs / command_record.name)
    (summary,) = load_runs(runs)[0]
    board, elsewhere = tmp_path / "board", tmp_path / "elsewhere"
    board.mkdir()
    elsewhere.mkdir()
    (board / run_folder(summary)).symlink_to(elsewhere)
    assert main(["export", "--runs-dir", str(runs), "--tensorboard", str(board)]) == 2
    assert "is not a folder the export made (a link or a file)" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in board.iterdir()) == [run_folder(summary)]
