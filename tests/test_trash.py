"""Deleting is the most dangerous verb: `runs rm`, `restore`, `empty-trash` and the app's delete never follow a
link out of the runs folder, never delete what is not a record the workbench wrote, and work or refuse in one
line on read-only folders, across file systems, and with a `.trash` that is a file, a link or a device."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket

import pytest

from workbench.cli.entry import main
from workbench.paper.config import RunConfig
from workbench.records.store import load_runs
from workbench.records.trash import TrashRefused, empty_trash, move_to_trash, restore, trash_dir

TINY = RunConfig(hl=16, c_hl=8, rounds=1, epochs=1, pairs=100, batch_size=20, device="cpu")
IDS = ("20260101-000000-aaaaaa", "20260101-000001-bbbbbb")


@pytest.fixture(scope="module")
def one_record(tmp_path_factory, source):
    """One real record, trained once for the module: each test copies it under ids of its own."""
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    root = tmp_path_factory.mktemp("template")
    (result,) = run_configs([TINY], source)
    return save_run(result, "kept", root=root).path


@pytest.fixture
def runs(tmp_path, one_record):
    root = tmp_path / "runs"
    for run_id in IDS:
        shutil.copytree(one_record, root / run_id)
        summary = root / run_id / "summary.json"
        summary.write_text(json.dumps({**json.loads(summary.read_text()), "id": run_id}))
    return root


@pytest.fixture
def thesis(tmp_path):
    """What a user keeps beside the runs, which no verb of the trash may touch."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("four years of work\n")
    record_like = docs / "20250101-000000-cccccc"  # even a folder that looks like a record
    record_like.mkdir()
    (record_like / "summary.json").write_text("{}")
    return docs


def cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_trash_that_links_elsewhere_is_refused_by_every_verb_and_nothing_there_is_deleted(runs, thesis, capsys):
    (runs / ".trash").symlink_to(thesis)
    for verb in (["empty-trash"], ["rm", IDS[0]], ["restore", IDS[0]], ["ls", "--trash"]):
        code, out, err = cli(capsys, "runs", *verb, "--runs-dir", str(runs))
        assert code == 1 and "is a link" in err and str(runs / ".trash") in err, (verb, out, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (thesis / "thesis.tex").read_text() == "four years of work\n"
    assert (thesis / "20250101-000000-cccccc" / "summary.json").exists()
    assert sorted(s.id for s in load_runs(runs)[0]) == list(IDS)


@pytest.mark.parametrize("odd", ["file", "devnull", "fifo"])
def test_a_trash_that_is_no_folder_is_refused_in_one_line(runs, capsys, odd):
    trash = runs / ".trash"
    if odd == "file":
        trash.write_text("notes\n")
    elif odd == "devnull":
        trash.symlink_to(os.devnull)
    else:
        os.mkfifo(trash)
    for verb in (["rm", IDS[0]], ["empty-trash"], ["restore", IDS[0]]):
        code, _, err = cli(capsys, "runs", *verb, "--runs-dir", str(runs))
        assert code == 1 and ".trash" in err and len(err.strip().splitlines()) == 1, (verb, err)
    assert sorted(s.id for s in load_runs(runs)[0]) == list(IDS)
    if odd == "file":
        assert trash.read_text() == "notes\n"


def test_empty_trash_deletes_records_only_and_names_what_it_leaves(runs, thesis, capsys):
    assert move_to_trash([IDS[0]], runs).done == [IDS[0]]
    trash = trash_dir(runs)
    (trash / "readme.txt").write_text("mine")
    (trash / "elsewhere").symlink_to(thesis)
    (trash / "20250101-000000-cccccc").symlink_to(thesis / "20250101-000000-cccccc")
    tampered = trash / "20250101-000000-dddddd"
    shutil.copytree(runs / IDS[1], tampered)
    (tampered / "thesis.tex").write_text("a copy kept inside a record")
    linked = trash / "20250101-000000-eeeeee"
    shutil.copytree(runs / IDS[1], linked)
    (linked / "history.csv").unlink()
    (linked / "history.csv").symlink_to(thesis / "thesis.tex")
    code, out, err = cli(capsys, "runs", "empty-trash", "--runs-dir", str(runs))
    assert code == 0 and "deleted 1 record " in out
    for left in ("readme.txt", "elsewhere", "cccccc", "dddddd", "eeeeee"):
        assert left in err, left
    assert sorted(p.name for p in trash.iterdir()) == sorted(["readme.txt", "elsewhere", "20250101-000000-cccccc",
                                                             tampered.name, linked.name])
    assert (thesis / "thesis.tex").read_text() == "four years of work\n"
    assert (thesis / "20250101-000000-cccccc" / "summary.json").exists()


def test_a_run_folder_that_is_a_link_or_still_training_is_not_moved(runs, thesis, capsys):
    outside = thesis / "20250101-000000-cccccc"
    (runs / "20250101-000000-ffffff").symlink_to(outside)
    out = move_to_trash(["20250101-000000-ffffff", "no-such"], runs)
    assert out.done == [] and len(out.left) == 2 and "is a link" in out.left[0]
    assert (outside / "summary.json").exists()
    training = runs / "20990101-000000-999999"
    training.mkdir()
    (training / ".writer").write_text(f"{socket.gethostname()}:{os.getpid()}")
    code, _, err = cli(capsys, "runs", "rm", "999999", "--runs-dir", str(runs))
    assert code == 2 and "still training" in err and "no run with id" in err


def test_restore_of_a_run_that_is_not_in_the_trash_says_where_it_is(runs, capsys):
    assert move_to_trash([IDS[0]], runs).done == [IDS[0]]
    shutil.copytree(trash_dir(runs) / IDS[0], runs / IDS[0])  # the same run, back by hand
    code, out, err = cli(capsys, "runs", "restore", IDS[0], "--runs-dir", str(runs))
    assert code == 1 and "restored 0 runs" in out and "exists already" in err
    code, _, err = cli(capsys, "runs", "restore", IDS[1], "--runs-dir", str(runs))
    assert code == 2 and f"{IDS[1]} is not in the trash: it is in {runs}" in err
    shutil.rmtree(runs / IDS[0])
    code, _, err = cli(capsys, "runs", "rm", IDS[0], "--runs-dir", str(runs))
    assert code == 2 and "is in the trash" in err and "runs restore" in err


@pytest.mark.parametrize("failure", [errno.EROFS, errno.EACCES, errno.EXDEV])
def test_a_move_the_file_system_refuses_is_one_line_and_keeps_every_record(runs, capsys, monkeypatch, failure):
    real_rename = os.rename

    def refusing(src, dst):
        if ".trash" in str(src) + str(dst):
            raise OSError(failure, os.strerror(failure))
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", refusing)
    code, out, err = cli(capsys, "runs", "rm", IDS[0], IDS[1], "--runs-dir", str(runs))
    expected = "different file systems" if failure == errno.EXDEV else "read-only"
    assert code == 1 and expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert sorted(s.id for s in load_runs(runs)[0]) == list(IDS)


def test_a_read_only_runs_folder_refuses_to_make_the_trash(runs, capsys, monkeypatch):
    from pathlib import Path

    real_mkdir = Path.mkdir

    def refusing(self, *a, **k):
        if self.name == ".trash":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", refusing)
    code, _, err = cli(capsys, "runs", "rm", IDS[0], "--runs-dir", str(runs))
    assert code == 1 and "cannot make the trash" in err and "Permission denied" in err
    assert not (runs / ".trash").exists() and len(load_runs(runs)[0]) == 2


def test_a_trash_on_another_file_system_is_refused_before_anything_moves(runs, monkeypatch):
    (runs / ".trash").mkdir()
    real_stat = os.stat

    def other_device(path, *a, **k):
        info = real_stat(path, *a, **k)
        if str(path).endswith(".trash"):
            return os.stat_result((*info[:2], info.st_dev + 1, *info[3:]))
        return info

    monkeypatch.setattr(os, "stat", other_device)
    with pytest.raises(TrashRefused, match="another file system"):
        move_to_trash([IDS[0]], runs)
    assert len(load_runs(runs)[0]) == 2


def test_a_failure_half_way_says_what_already_moved(runs, capsys, monkeypatch):
    real_rename = os.rename
    calls = []

    def second_fails(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", second_fails)
    code, out, err = cli(capsys, "runs", "rm", IDS[0], IDS[1], "--runs-dir", str(runs))
    assert code == 1 and f"moved {IDS[0]}" in out and "Input/output error" in err
    assert [s.id for s in load_runs(runs)[0]] == [IDS[1]] and (trash_dir(runs) / IDS[0] / "summary.json").exists()
    monkeypatch.setattr(os, "rename", real_rename)
    assert restore([IDS[0]], runs).done == [IDS[0]] and empty_trash(runs).done == []


def test_a_runs_dir_that_is_a_file_is_named(tmp_path, capsys):
    file = tmp_path / "runs"
    file.write_text("x")
    for verb in (["ls"], ["rm", "x"], ["empty-trash"]):
        code, _, err = cli(capsys, "runs", *verb, "--runs-dir", str(file))
        assert code == 2 and "--runs-dir" in err and "is a file" in err


def test_runs_ls_names_what_a_killed_run_left(runs, capsys):
    killed = runs / "20260101-000002-dddddd"
    killed.mkdir()
    (killed / ".writer").write_text(f"{socket.gethostname()}:999999999")
    (killed / "resume.npz").write_bytes(b"")
    code, out, err = cli(capsys, "runs", "ls", "--runs-dir", str(runs))
    assert code == 0 and "2 runs" in out and "digit-workbench resume 20260101-000002-dddddd" in err
    assert killed.exists()  # listing touches nothing


async def test_a_run_removed_from_the_command_line_leaves_the_open_apps_table(runs, tmp_path, capsys):
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.results import ResultsTable

    app = WorkbenchApp(runs_root=runs, export_path=tmp_path / "e.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(ResultsTable)
        for _ in range(50):
            if len(table.summaries) == 2:
                break
            await pilot.pause(0.1)
        assert sorted(table.summaries) == list(IDS)
        assert main(["runs", "rm", IDS[0], "--runs-dir", str(runs)]) == 0  # another process, as far as the app knows
        app.rescan_runs()
        await pilot.pause(0.2)
        assert sorted(table.summaries) == [IDS[1]] and IDS[0] not in table.rows
        assert any("left the runs folder" in str(n.message) for n in app._notifications)


async def test_the_trash_is_browsed_in_the_app_and_any_run_comes_back(runs, tmp_path):
    """Issue 31, item 7: `T` in the results table lists the trash; `r` brings the run under the cursor back (not
    only the last delete's, as `u` does), and it is in the results table again."""
    from textual.widgets import DataTable

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.results import ResultsTable
    from workbench.tui.trash import TrashScreen

    assert move_to_trash(list(IDS), runs).done == list(IDS)  # by the command line, before the app opened
    app = WorkbenchApp(runs_root=runs, export_path=tmp_path / "e.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        table = app.query_one(ResultsTable)
        table.focus()
        await pilot.pause()
        assert table.summaries == {}
        await pilot.press("T")
        await pilot.pause()
        assert isinstance(app.screen, TrashScreen)
        listed = app.screen.query_one(DataTable)
        assert listed.row_count == 2 and "2 runs in" in str(app.screen.query_one("#trash-caption").render())
        await pilot.press("space", "r")  # mark the first, then bring it back (the cursor moved to the second)
        await pilot.pause()
        assert listed.row_count == 1 and len(load_runs(runs)[0]) == 1
        await pilot.press("escape")
        await pilot.pause()
        assert len(table.summaries) == 1  # in the results table again


async def test_the_apps_trash_view_says_so_when_the_trash_is_a_link(runs, thesis, tmp_path):
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.trash import TrashScreen

    (runs / ".trash").symlink_to(thesis)
    app = WorkbenchApp(runs_root=runs, export_path=tmp_path / "e.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(TrashScreen(runs))
        await pilot.pause()
        assert "is a link" in str(app.screen.query_one("#trash-caption").render())
        await pilot.press("r")
        await pilot.pause()
    assert (thesis / "thesis.tex").exists() and len(load_runs(runs)[0]) == 2
