"""A record's numpy archives (weights.npz, resume.npz, predictions.npz) under hostile bytes: a header that claims
terabytes, text, random bytes, the wrong dtype, a link loop, a folder or a FIFO. Each gives one line that names
the file and says what is wrong, from the library, the commands and the app; nothing is allocated past a bound
and nothing invites the user to unpickle."""

from __future__ import annotations

import io
import os
import shutil
import zipfile

import numpy as np
import pytest

from workbench.cli.entry import main
from workbench.records.layout import PREDICTIONS_FILE, RESUME_FILE, WEIGHTS_FILE
from workbench.records.weights import WeightsUnreadable, kept_rounds

TERABYTES = (10**12,)


@pytest.fixture
def record(tmp_path, command_record):
    """A copy of the session's record, to damage."""
    folder = tmp_path / "runs" / command_record.name
    shutil.copytree(command_record, folder)
    return folder


def with_member(path, key: str, header: dict, payload: bytes = b"\0" * 16) -> None:
    """The archive with one member replaced by a .npy header (and a few bytes) of our making."""
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    members[f"{key}.npy"] = buffer.getvalue() + payload
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def first_member(path) -> str:
    with zipfile.ZipFile(path) as archive:
        return next(n for n in archive.namelist() if n.startswith("round0/"))[:-4]


def huge(dtype="<f4") -> dict:
    return {"descr": dtype, "fortran_order": False, "shape": TERABYTES}


def cli(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_a_header_that_claims_terabytes_is_refused_before_anything_is_allocated(record, capsys, tmp_path):
    from PIL import Image

    with_member(record / WEIGHTS_FILE, first_member(record / WEIGHTS_FILE), huge())
    for picture in ("a.png", "b.png"):
        Image.fromarray(np.pad(np.full((10, 6), 255, np.uint8), 9)).save(tmp_path / picture)
    runs = record.parent
    for argv in (["predict", record.name, tmp_path / "a.png", tmp_path / "b.png"],
                 ["plot", record.name, "--weights", "--out", tmp_path / "w.png"]):
        code, err = cli(capsys, *argv, "--runs-dir", runs)
        assert code != 0 and "not the network's float32" in err and "(1000000000000,)" in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with_member(record / RESUME_FILE, first_member(record / RESUME_FILE), huge())
    code, err = cli(capsys, "resume", record.name, "--epochs", "2", "--runs-dir", runs)
    assert code == 2 and str(record / RESUME_FILE) in err and "(1000000000000,)" in err, err


@pytest.mark.parametrize("key", ["history", "round0/epoch"])
def test_a_resume_part_of_no_sane_size_is_refused(record, capsys, key):
    with_member(record / RESUME_FILE, key, huge("<f8"))
    code, err = cli(capsys, "resume", record.name, "--epochs", "2", "--runs-dir", record.parent)
    assert code == 2 and key in err and "more than" in err and "Traceback" not in err, err


def test_predictions_that_claim_terabytes_are_refused(record):
    from workbench.analysis.predictions import PredictionsUnreadable, load_predictions

    with_member(record / PREDICTIONS_FILE, "prob", huge())
    with pytest.raises(PredictionsUnreadable, match="prob claims float32"):
        load_predictions(record)


@pytest.mark.parametrize("content", [b"just some text\n", bytes(range(256)) * 8, b""])
def test_bytes_that_are_no_archive_never_mention_pickle(record, content):
    from workbench.analysis.networks import load_network

    (record / WEIGHTS_FILE).write_bytes(content)
    with pytest.raises(WeightsUnreadable) as err:
        load_network(record, 0)
    assert "not a numpy archive" in str(err.value) and "pickle" not in str(err.value)
    with pytest.raises(WeightsUnreadable, match="not a numpy archive"):
        kept_rounds(record)


@pytest.mark.parametrize("dtype", [np.float64, np.complex64])
def test_weights_of_the_right_shape_and_the_wrong_dtype_say_so(record, dtype):
    from workbench.analysis.networks import load_network
    from workbench.records.weights import read_weights
    from workbench.records.store import read_record

    config = read_record(record).config
    arrays = {f"round0/{k}": v.astype(dtype) for k, v in read_weights(record, config, 0).items()}
    np.savez(record / WEIGHTS_FILE, **arrays)
    with pytest.raises(WeightsUnreadable, match=f"is {np.dtype(dtype)} .*not the network's float32"):
        load_network(record, 0)


@pytest.mark.parametrize("odd", ["loop", "folder", "fifo", "cut"])
def test_a_weights_file_that_cannot_be_read_is_named_not_called_none_kept(record, odd):
    from workbench.analysis.networks import load_network

    path = record / WEIGHTS_FILE
    data = path.read_bytes()
    path.unlink()
    if odd == "loop":
        path.symlink_to(path)
    elif odd == "folder":
        path.mkdir()
    elif odd == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(data[: len(data) // 3])
    for read in (kept_rounds, lambda r: load_network(r, 0)):
        with pytest.raises(WeightsUnreadable) as err:
            read(record)
        assert str(path) in str(err.value) and "no weights kept" not in str(err.value), odd
    if odd == "loop":
        assert "symbolic links" in str(err.value)


async def test_the_learned_view_names_a_weights_file_it_cannot_read(record, tmp_path):
    from textual.widgets import Static

    from workbench.records.store import read_record
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.details import RunDetails

    with_member(record / WEIGHTS_FILE, first_member(record / WEIGHTS_FILE), huge())
    app = WorkbenchApp(runs_root=record.parent, export_path=tmp_path / "e.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = RunDetails(read_record(record))
        app.push_screen(screen)
        await pilot.pause()
        screen.show_learned()
        await pilot.pause()
        note = str(screen.query_one("#learned-note", Static).render())
        assert "not the network's float32" in note and "no networks kept" not in note
        (record / WEIGHTS_FILE).unlink()
        (record / WEIGHTS_FILE).mkdir()
        screen.show_learned()
        await pilot.pause()
        note = str(screen.query_one("#learned-note", Static).render())
        assert "weights.npz" in note and "no networks kept" not in note
