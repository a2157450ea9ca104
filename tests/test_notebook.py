"""Pruning runs without losing anything by accident: the trash, the `runs` command, the results table's delete and
undo, and failed runs sorted last."""

from __future__ import annotations

import json
import os
import socket

import pytest

from workbench.cli.entry import main
from workbench.paper.config import RunConfig
from workbench.records.notebook import unfinished_last
from workbench.records.trash import empty_trash, move_to_trash, restore, trash_dir, trashed
from workbench.records.store import load_runs

TINY = RunConfig(hl=16, c_hl=8, rounds=2, epochs=1, pairs=100, batch_size=20, device="cpu")


@pytest.fixture
def records(tmp_path, source):
    """Three finished runs (one of them failed, as a record says it) and one still being written."""
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    root = tmp_path / "runs"
    names = ["plain", "both", "broken"]
    configs = [TINY.replace(aux_loss=False), TINY, TINY.replace(alpha=0.2)]
    saved = [save_run(result, name, root=root) for name, result in zip(names, run_configs(configs, source))]
    summary = saved[2].path / "summary.json"
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps({**data, "status": "failed", "reason": "diverged"}))
    writing = root / "20990101-000000-aaaaaa"  # claimed by a live process, no summary yet
    writing.mkdir()
    (writing / ".writer").write_text(f"{socket.gethostname()}:{os.getpid()}")
    (writing / "history.csv").write_text("round,epoch\n")
    return root, {s.name: s.id for s in load_runs(root)[0]}


def test_a_run_moved_to_the_trash_is_whole_there_and_whole_back(records):
    root, ids = records
    before = sorted(p.name for p in (root / ids["both"]).iterdir())
    out = move_to_trash([ids["both"], "20990101-000000-aaaaaa", "no-such-run"], root)
    assert out.done == [ids["both"]] and len(out.left) == 2
    assert sorted(s.name for s in load_runs(root)[0]) == ["broken", "plain"]
    assert [s.name for s in trashed(root)] == ["both"]
    assert sorted(p.name for p in (trash_dir(root) / ids["both"]).iterdir()) == before
    assert (root / "20990101-000000-aaaaaa" / "history.csv").exists()  # a run being written is never touched
    assert restore([ids["both"]], root).done == [ids["both"]]
    assert sorted(s.name for s in load_runs(root)[0]) == ["both", "broken", "plain"]
    assert move_to_trash([ids["plain"]], root).done == [ids["plain"]] and empty_trash(root).done == [ids["plain"]]
    assert trashed(root) == [] and sorted(s.name for s in load_runs(root)[0]) == ["both", "broken"]


def test_the_runs_command_lists_prunes_restores_and_empties(records, capsys):
    root, ids = records
    at = ["--runs-dir", str(root)]
    assert main(["runs", "ls", "alpha=0.2", *at]) == 0
    out = capsys.readouterr().out
    assert "broken" in out and "plain" not in out and "1 run" in out
    assert main(["runs", "rm", "--status", "failed,cancelled", *at]) == 0
    assert "moved 1 run" in capsys.readouterr().out
    assert main(["runs", "rm", ids["plain"][-6:], *at]) == 0  # by the end of its id, as the app shows it
    assert sorted(s.name for s in load_runs(root)[0]) == ["both"]
    assert main(["runs", "ls", "--trash", *at]) == 0
    out = capsys.readouterr().out
    assert "broken" in out and "plain" in out and "2 runs" in out
    assert main(["runs", "restore", "plain", *at]) == 0
    assert sorted(s.name for s in load_runs(root)[0]) == ["both", "plain"]
    assert main(["runs", "empty-trash", *at]) == 0
    assert "deleted 1 record" in capsys.readouterr().out and trashed(root) == []
    for argv, fragment in ((["runs"], "ls, rm, restore, rename or empty-trash"), (["runs", "rm", *at], "RUN"),
                           (["runs", "rm", "--status", "gone", *at], "--status"),
                           (["runs", "restore", "nothing", *at], "'nothing'")):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)


def test_failed_and_cancelled_runs_come_last_whichever_way_the_rest_is_sorted():
    from types import SimpleNamespace

    runs = [SimpleNamespace(status=st, n=n) for n, st in enumerate(["failed", "done", "cancelled", "done"])]
    for reverse in (False, True):
        ordered = unfinished_last(sorted(runs, key=lambda r: r.n, reverse=reverse))
        assert [r.status for r in ordered][:2] == ["done", "done"]


async def results_of(pilot, app, count: int):
    """The results table once the runs on disk are in it (the app reads them off its UI thread at start)."""
    from workbench.tui.results import ResultsTable

    table = app.query_one(ResultsTable)
    for _ in range(50):
        if len(table.summaries) == count:
            break
        await pilot.pause(0.1)
    return table


async def test_delete_moves_runs_to_the_trash_and_u_brings_them_back(records, tmp_path):
    from workbench.tui.app import WorkbenchApp

    root, ids = records
    app = WorkbenchApp(runs_root=root, export_path=tmp_path / "export.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        table = await results_of(pilot, app, 3)
        for name in ("plain", "both"):
            table.move_cursor(row=[s.name for s in table.shown()].index(name))
            await pilot.press("space")
        table.focus()
        await pilot.press("delete")
        await pilot.pause()
        assert sorted(s.name for s in table.summaries.values()) == ["broken"]
        assert sorted(s.name for s in trashed(root)) == ["both", "plain"]
        await pilot.press("u")
        await pilot.pause()
        assert sorted(s.name for s in table.summaries.values()) == ["both", "broken", "plain"]
        assert trashed(root) == [] and len(load_runs(root)[0]) == 3
        table.sort_by("acc")  # best first: the failed run still comes last
        await pilot.pause()
        assert table.shown()[-1].name == "broken"
        table.sort_by("acc")
        assert table.shown()[-1].name == "broken"


def test_tags_and_a_note_go_with_a_run_from_the_command_and_are_found(tmp_path, capsys):
    import csv

    runs = tmp_path / "runs"
    assert main(["run", "--preset", "table2-fcn-ws", "--rounds", "1", "--epochs", "1", "--pairs", "100",
                 "--batch-size", "20", "--tag", "quick", "--tag", "smoke, quick,check", "--note", " first try ",
                 "--runs-dir", str(runs)]) == 0
    (summary,) = load_runs(runs)[0]
    assert summary.tags == ["quick", "smoke", "check"] and summary.note == "first try"
    capsys.readouterr()
    assert main(["runs", "ls", "smoke", "first", "--runs-dir", str(runs)]) == 0
    assert "1 run" in capsys.readouterr().out
    assert main(["export", "--runs-dir", str(runs), "--out", str(tmp_path / "e.csv")]) == 0
    (row,) = list(csv.DictReader((tmp_path / "e.csv").open()))
    assert row["tags"] == "quick, smoke, check" and row["note"] == "first try"


@pytest.mark.parametrize("argv, flag", [
    (["--tag", "x" * 41], "--tag"), (["--tag", "a\x1b[31mb"], "--tag"),
    (["--tag", ",".join(f"t{i}" for i in range(21))], "--tag"), (["--note", "n" * 2001], "--note"),
    (["--note", "title \x1b]0;pwned\x07 set"], "--note"), (["--note", "red \x1b[31m"], "--note"),
    (["--note", "c1 \x9b31m"], "--note")])
def test_bad_tags_and_notes_are_refused_with_one_line(tmp_path, capsys, argv, flag):
    assert main(["run", "--rounds", "1", "--epochs", "1", *argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"digit-workbench: error: {flag}:") and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_note_written_by_hand_with_an_escape_reaches_the_csv_as_text(records, tmp_path):
    import csv

    root, ids = records
    summary = root / ids["plain"] / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "note": "two lines\nand \x1b]0;pwned\x07"}))
    assert main(["export", "--runs-dir", str(root), "--out", str(tmp_path / "e.csv")]) == 0
    text = (tmp_path / "e.csv").read_text()
    assert "\x1b" not in text and "\x07" not in text
    (row,) = [r for r in csv.DictReader(text.splitlines(keepends=True)) if r["id"] == ids["plain"]]
    assert row["note"] == "two lines\nand \\x1b]0;pwned\\x07"


def test_a_record_with_bad_tags_is_skipped_naming_the_field(records):
    root, ids = records
    summary = root / ids["plain"] / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "tags": ["ok", 5]}))
    runs, problems = load_runs(root)
    assert "plain" not in [s.name for s in runs] and any("tags[1]" in p for p in problems)


async def test_tags_and_a_note_are_edited_from_a_runs_details(records, tmp_path):
    from textual.widgets import Input

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.details import RunDetails

    root, ids = records
    app = WorkbenchApp(runs_root=root, export_path=tmp_path / "export.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        table = await results_of(pilot, app, 3)
        table.move_cursor(row=[s.name for s in table.shown()].index("both"))
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RunDetails)
        await pilot.press("t")
        await pilot.pause()
        app.screen.query_one("#notes-tags", Input).value = "x" * 50  # refused in the dialog, which stays
        await pilot.press("enter")
        await pilot.pause()
        assert "at most 40" in str(app.screen.query_one("#notes-error").render())
        app.screen.query_one("#notes-tags", Input).value = "baseline, ws"
        app.screen.query_one("#notes-note", Input).value = "the one to beat"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RunDetails)
        assert "baseline, ws" in str(app.screen.query_one("#details-notes").render())
        record = json.loads((root / ids["both"] / "summary.json").read_text())
        assert record["tags"] == ["baseline", "ws"] and record["note"] == "the one to beat"
        assert table.summaries[ids["both"]].tags == ["baseline", "ws"]  # the row follows
        await pilot.press("escape")
        await pilot.pause()
        table.set_filter("beat")
        assert [s.name for s in table.shown()] == ["both"]


async def test_the_forms_name_tags_and_note_go_with_the_run_and_are_refused_when_bad(tmp_path):
    from textual.widgets import Input, Select

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.form import ConfigForm
    from workbench.tui.results import ResultsTable

    app = WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "x.csv")
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.query_one(ConfigForm)
        form.query_one("#preset", Select).value = "table2-fcn-ws-aux"
        await pilot.pause()
        small = {"alpha": "0.2", "hl": "16", "c_hl": "8", "rounds": "2", "epochs": "1", "pairs": "100",
                 "batch_size": "20"}
        for key, value in small.items():
            form.query_one(f"#f-{key}", Input).value = value
        await pilot.pause()
        name = form.query_one("#f-name", Input)
        assert name.placeholder.startswith("table2-fcn-ws-aux α 0.2")  # the name it gets unless one is typed
        form.query_one("#f-tags", Input).value = "x" * 41 + ", fine"
        await pilot.pause()
        app.action_run()
        assert not app.runs.waiting and app.runs.current is None  # refused, naming the field
        assert "a tag of at most 40 characters" in str(form.query_one("#e-tags").render())
        form.query_one("#f-tags", Input).value = "probe, α sweep"
        form.query_one("#f-note", Input).value = "  first try [b]bold?[/b]  "
        name.value = "[red]mine[/red]"
        await pilot.pause()
        app.action_run()
        assert name.value == "" and form.query_one("#f-tags", Input).value == "probe, α sweep"  # tags stay
        await wait_until_idle(pilot, app)
        (run,) = app.query_one(ResultsTable).shown()
        assert (run.name, run.tags, run.note) == ("[red]mine[/red]", ["probe", "α sweep"], "first try [b]bold?[/b]")
        (record,) = load_runs(tmp_path / "runs")[0]
        assert (record.name, record.tags, record.note) == (run.name, run.tags, run.note)


async def wait_until_idle(pilot, app, timeout=120.0):
    import time

    deadline = time.monotonic() + timeout
    while not app.runs.idle:
        assert time.monotonic() < deadline, "the run never ended"
        await pilot.pause(0.1)
    await pilot.pause(0.2)


def test_a_name_is_one_line_of_sane_length_naming_the_flag(tmp_path, capsys):
    at = ["--runs-dir", str(tmp_path / "runs"), "--rounds", "1", "--epochs", "1", "--pairs", "100"]
    assert main(["run", "--name", "a\nb", *at]) == 2
    assert "--name: a name on one line" in capsys.readouterr().err
    assert main(["table", "basic", "--name", "n" * 201, *at]) == 2
    assert "--name: a name of at most 200 characters, got 201" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before anything trained or was written


def test_a_cancelled_run_says_what_its_rounds_reached_not_test_dash():
    from types import SimpleNamespace

    from workbench.format import score_line

    cancelled = SimpleNamespace(mean=None, std=None, round_acc=[], paper=None, status="cancelled",
                                config=RunConfig(epochs=30),
                                rounds=[{"test_acc": 0.88, "epochs": 13}, {"test_acc": 0.90, "epochs": 12}])
    line = score_line(cancelled)
    assert line.startswith("test — %") and "cancelled at epoch 13 of 30" in line and "89.0 ± 1.4 %" in line
    assert "no final score" in line and "over 0 rounds" not in score_line(cancelled, detail=True)


def test_runs_rename_gives_a_run_a_new_name_as_plain_text(records, capsys):
    root, ids = records
    at = ["--runs-dir", str(root)]
    assert main(["runs", "rename", ids["both"][-6:], "both, α 0.5 [bold]kept[/]", *at]) == 0
    assert "renamed" in capsys.readouterr().out
    record = json.loads((root / ids["both"] / "summary.json").read_text())
    assert record["name"] == "both, α 0.5 [bold]kept[/]"  # as typed: drawn as text wherever it shows
    assert record["tags"] == [] and record["id"] == ids["both"]  # the rest of the record as it was
    for bad, said in (("", "keeps a name"), ("a\x1b[31mb", "without control characters"), ("x" * 500, "at most")):
        assert main(["runs", "rename", ids["plain"], bad, *at]) == 2
        err = capsys.readouterr().err
        assert said in err and "NEW" in err and len(err.strip().splitlines()) == 1
    assert main(["runs", "rename", "no-such-run", "x", *at]) == 2
    assert json.loads((root / ids["plain"] / "summary.json").read_text())["name"] == "plain"


async def test_n_in_the_results_table_renames_the_run_under_the_cursor(records, tmp_path):
    from textual.widgets import Input

    from workbench.tui.app import WorkbenchApp

    root, ids = records
    app = WorkbenchApp(runs_root=root, export_path=tmp_path / "export.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        table = await results_of(pilot, app, 3)
        table.move_cursor(row=[s.name for s in table.shown()].index("plain"))
        table.focus()
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#notes-name", Input).value = "plain, the baseline"
        await pilot.press("enter")
        await pilot.pause()
        assert table.summaries[ids["plain"]].name == "plain, the baseline"  # the row follows
        assert json.loads((root / ids["plain"] / "summary.json").read_text())["name"] == "plain, the baseline"
