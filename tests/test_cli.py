import csv
import json

import pytest

from workbench.cli import main


@pytest.mark.parametrize("argv, fragment", [
    (["run", "--hl", "abc"], "--hl"),
    (["run", "--alpha", "3"], "--alpha"),
    (["run", "--bogus"], "--bogus"),
    (["run", "--preset", "table9"], "--preset"),
    (["run", "--preset", "basic", "--aux-loss"], "--aux-loss"),
    (["run", "--device", "tpu"], "--device"),
    (["run", "--engine", "fast"], "--engine"),
    (["table", "nope"], "nope"),
    (["frobnicate"], "frobnicate"),
])
def test_bad_flags_exit_2_with_one_line(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cuda_where_there_is_none(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["run", "--device", "cuda", "--rounds", "1", "--epochs", "1"]) == 2
    assert "cuda is not available" in capsys.readouterr().err


def test_run_trains_saves_and_reports(tmp_path, capsys):
    runs = tmp_path / "records"
    code = main(["run", "--preset", "table2-fcn-ws-aux", "--rounds", "2", "--epochs", "1", "--pairs", "100",
                 "--batch-size", "20", "--hl", "16", "--runs-dir", str(runs)])
    assert code == 0
    out = capsys.readouterr().out
    # an edited config is no longer the paper's row: no paper score, no difference from it
    assert "table2-fcn-ws-aux" in out and "edited" in out and "89.2" not in out
    (run_dir,) = list(runs.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["config"]["hl"] == 16 and len(summary["round_acc"]) == 2
    assert summary["paper"] is None and summary["name"] == "table2-fcn-ws-aux (edited)"

    export = tmp_path / "out.csv"
    assert main(["export", "--runs-dir", str(runs), "--out", str(export)]) == 0
    rows = list(csv.DictReader(export.open()))
    assert len(rows) == 1 and rows[0]["preset"] == "table2-fcn-ws-aux"


def test_table_runs_several_presets(tmp_path, capsys):
    code = main(["table", "table2-fcn-ws", "table2-fcn-ws-aux", "basic", "--rounds", "2", "--epochs", "1",
                 "--pairs", "100", "--batch-size", "20", "--no-save"])
    assert code == 0
    out = capsys.readouterr().out
    for name in ("table2-fcn-ws (edited)", "table2-fcn-ws-aux (edited)", "basic (edited)"):
        assert name in out
    assert "85.1" not in out and "71.4" not in out  # shortened rows are not the paper's rows


def test_presets_lists_the_papers_scores(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "table4-cnn-best" in out and "97.2" in out


def test_export_to_an_unwritable_place_names_the_flag(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "missing-dir" / "x" / "\0bad.csv")]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("columns", ["80", "60", "200"])
def test_presets_never_cut_a_name(capsys, monkeypatch, columns):
    from workbench.config import load_presets

    monkeypatch.setenv("COLUMNS", columns)  # rich reads the width from here when piped
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in load_presets():
        assert name in out, name  # other columns may shrink; a name never does


@pytest.mark.parametrize("argv, fragment", [
    (["run", "--preset", ""], "--preset"),
    (["run", "--pairs", "1001", "--rounds", "1", "--epochs", "1", "--data", "embedded"], "--pairs"),
    (["run", "--hl", "１２"], "--hl"),
    (["run", "--seed", str(10 ** 23)], "2147483647"),
])
def test_refused_up_front_with_one_line(capsys, argv, fragment, tmp_path):
    assert main([*argv, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing was trained or written


def test_an_empty_runs_variable_is_no_runs_variable(monkeypatch, tmp_path):
    from workbench.runs import runs_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGIT_WORKBENCH_RUNS", "")
    assert runs_dir() == __import__("pathlib").Path("runs")
