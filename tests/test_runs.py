import csv
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from workbench import fsutil
from workbench.engine import run_configs
from workbench.paper.config import RunConfig
from workbench.paper.presets import PaperScore
from workbench.records.csv_export import export_csv
from workbench.records.store import load_history, load_runs, save_run


@pytest.fixture(scope="module")
def trained(source):
    config = RunConfig(subnet="fcn", hl=16, c_hl=8, rounds=2, epochs=1, pairs=100, batch_size=20, device="cpu")
    return run_configs([config], source)[0]


def test_a_run_is_written_whole(tmp_path, trained):
    paper = PaperScore("II", "4", 0.892, 0.006)
    summary = save_run(trained, "my run", "table2-fcn-ws-aux", paper, tmp_path)
    files = sorted(p.name for p in summary.path.iterdir())
    assert files == ["history.csv", "predictions.npz", "summary.json", "weights.npz"]  # no config.json: the summary holds it
    assert json.loads((summary.path / "summary.json").read_text())["config"]["hl"] == 16
    history = load_history(summary.path)
    assert [(h["round"], h["epoch"]) for h in history] == [(0, 1), (1, 1)]
    loaded, problems = load_runs(tmp_path)
    assert problems == [] and len(loaded) == 1
    run = loaded[0]
    assert run.name == "my run" and run.paper == paper and run.config == trained.config
    assert run.round_acc == trained.test_accuracies() and run.data_source == trained.data_source


def test_a_killed_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old and whole")

    def crash(*args):
        raise KeyboardInterrupt  # killed between writing and renaming

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        fsutil.atomic_write_text(target, "new")
    assert target.read_text() == "old and whole"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_runs_without_summary_and_broken_summaries_are_reported_not_fatal(tmp_path, trained):
    save_run(trained, "good", root=tmp_path)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("{not json")
    loaded, problems = load_runs(tmp_path)
    assert [r.name for r in loaded] == ["good"]
    assert len(problems) == 1 and "broken" in problems[0]


def write_runs(args):
    root, count = args
    from workbench.engine.base import RunResult

    for i in range(count):
        result = RunResult(status="done", config=RunConfig(), rounds=[], history=[], data_source="x", device="cpu",
                           engine="loop", seed=0, wall_time=0.0)
        save_run(result, f"run {os.getpid()} {i}", root=root)
    return os.getpid()


def test_two_processes_never_clobber_each_others_runs(tmp_path):
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(write_runs, [(tmp_path, 15), (tmp_path, 15)])
    loaded, problems = load_runs(tmp_path)
    assert not problems and len(loaded) == 30 and len({r.id for r in loaded}) == 30


def test_export_has_one_row_per_run_with_every_column(tmp_path, trained):
    save_run(trained, "=HYPERLINK(\"http://x\")", "table2-fcn-ws-aux", PaperScore("II", "4", 0.892, 0.006), tmp_path)
    save_run(trained, "plain", None, None, tmp_path)
    runs, _ = load_runs(tmp_path)
    out = export_csv(runs, tmp_path / "out.csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2
    first = rows[0]
    for column in ("id", "preset", "subnet", "weight_sharing", "aux_loss", "alpha", "hl", "kl", "bc", "k", "c_hl",
                   "c_kl", "dropout", "lr", "lr_decay", "epochs", "batch_size", "rounds", "pairs", "seed",
                   "test_acc_mean", "test_acc_std", "round_0_acc", "round_1_acc", "paper_score", "wall_time_s",
                   "device", "data_source", "status"):
        assert column in first
    assert first["name"].startswith("'=")  # a formula is neutralised
    assert float(first["test_acc_mean"]) == pytest.approx(trained.mean_std()[0], abs=1e-6)
    assert float(first["round_1_acc"]) == pytest.approx(trained.test_accuracies()[1], abs=1e-6)
    assert float(first["paper_score"]) == 0.892
    assert float(first["difference"]) == pytest.approx(trained.mean_std()[0] - 0.892, abs=1e-6)
    assert rows[1]["paper_score"] == ""
    rounds = " ".join(str(r.round) for r in trained.rounds if r.status == "done")
    assert first["networks_kept"] == rounds  # every finished round's network is kept with the record


def test_a_line_break_in_a_name_neither_splits_the_row_nor_hides_a_formula(tmp_path, trained):
    save_run(trained, "\r=1", None, None, tmp_path)
    save_run(trained, "first line\n@SUM(A1)", None, None, tmp_path)
    runs, _ = load_runs(tmp_path)
    out = export_csv(runs, tmp_path / "out.csv")
    raw = out.read_bytes().decode()
    rows = list(csv.reader(open(out, newline="")))
    assert len(rows) == 3 and len({len(r) for r in rows}) == 1  # every cell quoted: the breaks stay inside
    names = sorted(r[rows[0].index("name")] for r in rows[1:])
    assert names == ["'\r'=1", "first line\n'@SUM(A1)"]
    for name in names:  # no line of a cell starts a formula
        assert not any(line[:1] in "=+-@" and line for line in name.replace("\r", "\n").split("\n"))
    assert raw.startswith('"')


@pytest.mark.parametrize("broken", ["null", "[]", '"text"', '{"id": "x"}', "{not json"])
def test_a_malformed_record_is_skipped_with_its_name_and_the_rest_load(tmp_path, trained, broken, capsys):
    from workbench.cli.entry import main

    save_run(trained, "good", root=tmp_path)
    bad = tmp_path / "20200101-000000-bad"
    bad.mkdir()
    (bad / "summary.json").write_text(broken)
    loaded, problems = load_runs(tmp_path)
    assert [r.name for r in loaded] == ["good"]
    assert len(problems) == 1 and "20200101-000000-bad" in problems[0]
    assert main(["export", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 0
    assert "skipped" in capsys.readouterr().err and len(list(csv.DictReader((tmp_path / "x.csv").open()))) == 1


@pytest.mark.parametrize("field, value", [("mean", "abc"), ("std", [1]), ("round_acc", "0.8"),
                                          ("round_acc", ["x"]), ("rounds", "3"), ("rounds", [1, 2]),
                                          ("paper", 5), ("config", None), ("wall_time", "soon")])
def test_a_record_with_a_field_of_the_wrong_type_is_skipped_naming_the_field(tmp_path, trained, field, value):
    summary = save_run(trained, "run", root=tmp_path)
    record = json.loads((summary.path / "summary.json").read_text())
    record[field] = value
    (summary.path / "summary.json").write_text(json.dumps(record))
    loaded, problems = load_runs(tmp_path)
    assert loaded == [] and len(problems) == 1 and field in problems[0]


def test_what_a_killed_writer_left_is_tidied_and_a_live_writers_run_is_not_touched(tmp_path, trained):
    """kill -9 while a run was saved: its temporary files and empty directory go at the next start; a partial
    record stays and is named; a run another live process is writing is left alone."""
    import subprocess
    import sys

    from workbench.records.folder import new_run_dir, tidy_abandoned
    from workbench.records.layout import WRITER_FILE

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_writer = f"{__import__('socket').gethostname()}:{dead.stdout.strip()}\n"
    _, empty = new_run_dir(tmp_path)
    (empty / WRITER_FILE).write_text(dead_writer)
    (empty / ".config.json.x1.tmp").write_text("half")
    _, partial = new_run_dir(tmp_path)
    (partial / WRITER_FILE).write_text(dead_writer)
    (partial / "config.json").write_text("{}")
    _, writing = new_run_dir(tmp_path)  # claimed by this live process
    whole = save_run(trained, "whole", root=tmp_path)
    notes = tidy_abandoned(tmp_path)
    assert not empty.exists()
    assert partial.exists() and not list(partial.glob("*.tmp")) and len(notes) == 1 and partial.name in notes[0]
    assert writing.exists() and (whole.path / "summary.json").exists()
    assert not (whole.path / WRITER_FILE).exists()
    loaded, problems = load_runs(tmp_path)
    assert [r.name for r in loaded] == ["whole"] and not problems


def test_a_claim_killed_before_its_writer_was_named_is_tidied_once_its_grace_is_past(tmp_path):
    import time

    from workbench.records.folder import CLAIM_GRACE_S, tidy_abandoned

    fresh, old = tmp_path / "20260101-000000-aaaaaa", tmp_path / "20260101-000000-bbbbbb"
    fresh.mkdir()
    old.mkdir()
    past = time.time() - CLAIM_GRACE_S - 5
    os.utime(old, (past, past))
    tidy_abandoned(tmp_path)
    assert fresh.exists() and not old.exists()  # one being claimed right now stays


def test_a_killed_writers_temporary_files_go_when_its_run_is_taken_over(tmp_path):
    from workbench.records.folder import take_over
    from workbench.records.layout import WRITER_FILE

    folder = tmp_path / "20260101-000000-cccccc"
    folder.mkdir()
    (folder / ".summary.json.k3j2.tmp").write_text('{"half')
    (folder / "history.csv").write_text("round,epoch\n")
    take_over(folder)
    assert sorted(p.name for p in folder.iterdir()) == [WRITER_FILE, "history.csv"]


def test_a_run_is_named_by_its_id_or_four_characters_of_its_start_or_end(tmp_path, trained):
    """One rule for every command that takes a run (records/layout.names_run): `resume` of a folder a killed run
    left, and `runs`, `compare`, `predict` of a record."""
    from workbench.records.folder import new_run_dir, unfinished
    from workbench.records.notebook import pick_runs

    _, folder = new_run_dir(tmp_path / "killed")  # no summary: a run to continue
    run_id = folder.name
    for ref in (run_id, run_id[:4], run_id[-4:], run_id[-6:]):
        assert unfinished(tmp_path / "killed", ref) == [folder], ref
    for ref in ("", run_id[-1], run_id[-3:], run_id[:3], run_id + "x"):
        assert unfinished(tmp_path / "killed", ref) == [], ref
    summary = save_run(trained, "a name", root=tmp_path / "runs")
    for ref in (summary.id, summary.id[-4:], summary.id[:4], "a name"):
        assert pick_runs([ref], [summary]) == [summary], ref
    for ref in (summary.id[-1], summary.id[-3:]):
        with pytest.raises(LookupError):
            pick_runs([ref], [summary])


def test_a_record_says_where_its_numbers_came_from(tmp_path, source, capsys):
    """Issue 31, item 4: the workbench's version and commit, the CPU kind and instruction set, the libraries, and
    what the run cost; in the record, the CSV and the run's details line."""
    import subprocess

    from workbench.cli.entry import main
    from workbench.format import provenance_text
    from workbench.training.group import NamedRun
    from workbench.training.train import train_and_record

    config = RunConfig(hl=16, c_hl=8, rounds=2, epochs=2, pairs=100, batch_size=20, device="cpu")
    (recorded,) = train_and_record([NamedRun("traced", config)], source, runs_root=tmp_path)
    record = json.loads((recorded.summary.path / "summary.json").read_text())
    versions, cost = record["versions"], record["cost"]
    assert versions["workbench"] and versions["cpu"] and versions["isa"] and versions["torch"]
    top = Path(__file__).resolve().parent.parent
    if (top / ".git").exists():  # run from a checkout: its commit, and whether it was edited
        head = subprocess.run(["git", "-C", str(top), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        assert versions["commit"].split("+")[0] == head
    assert cost["cpu_s"] >= 0 and cost["peak_mib"] > 50  # a process that imported torch holds more than 50 MiB
    summary = load_runs(tmp_path)[0][0]
    line = provenance_text(summary)
    assert f"workbench {versions['workbench']}" in line and versions["cpu"] in line and "peak" in line
    assert main(["export", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "e.csv")]) == 0
    (row,) = list(csv.DictReader((tmp_path / "e.csv").open()))
    assert (row["cpu"], row["isa"], row["workbench"]) == (versions["cpu"], versions["isa"], versions["workbench"])
    assert float(row["peak_mib"]) == cost["peak_mib"]
    assert row["started_at"].endswith("+00:00") and float(row["train_loss_mean"]) > 0  # issue 31's export gaps
    assert 0 <= float(row["digit_acc_mean"]) <= 1


def test_a_record_with_a_cost_that_is_no_number_is_skipped_naming_the_field(tmp_path, trained):
    summary = save_run(trained, "costly", root=tmp_path)
    file = summary.path / "summary.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), "cost": {"cpu_s": "lots"}}))
    loaded, problems = load_runs(tmp_path)
    assert loaded == [] and "cost" in problems[0]


def test_outside_a_checkout_a_record_names_only_the_version(monkeypatch, tmp_path):
    import workbench
    from workbench.records import provenance

    provenance.code_version.cache_clear()
    monkeypatch.setattr(workbench, "__file__", str(tmp_path / "site-packages" / "workbench" / "__init__.py"))
    try:
        assert provenance.code_version() == {"workbench": workbench.__version__}
    finally:
        provenance.code_version.cache_clear()
