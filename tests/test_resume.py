"""Runs that continue (resume.py): cancelled, killed or extended, each gives the numbers of the run that never
stopped, on either engine; what cannot continue says so in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from workbench.engine import run_configs
from workbench.paper.config import RunConfig, from_dict
from workbench.records.checkpoint import ResumeUnreadable, read_states
from workbench.records.folder import tidy_abandoned
from workbench.records.layout import RESUME_FILE, RUN_FILE
from workbench.records.store import load_runs
from workbench.training.continuing import check_history, continuation_of
from workbench.training.group import Group, NamedRun
from workbench.training.train import train_and_record

ENGINES = ["batched", "loop"]
CONFIGS = {
    "fcn": dict(subnet="fcn", weight_sharing=True, aux_loss=True, hl=16, c_hl=8),
    "cnn": dict(subnet="cnn", weight_sharing=False, aux_loss=True, bc=2, repair=True, shift=1, c_hl=8),
    "basic": dict(subnet="basic", hl=16, lr_decay=0.8),
}


DEVICE = os.environ.get("DIGIT_WORKBENCH_TEST_DEVICE", "cpu")  # cuda on a GPU machine (device_check.sh)


def tiny(epochs: int = 4, **kw) -> RunConfig:
    return RunConfig(**{**dict(rounds=3, pairs=200, batch_size=10, device=DEVICE, dropout=0.2, epochs=epochs), **kw})


def same_numbers(a, b) -> None:
    """Bit for bit: every round's accuracy and loss, every epoch `b` records, every weight."""
    assert [r.test_acc for r in a.rounds] == [r.test_acc for r in b.rounds]
    assert [r.train_loss for r in a.rounds] == [r.train_loss for r in b.rounds]
    figures = {(h.round, h.epoch): (h.test_acc, h.train_loss, h.train_acc, h.lr) for h in a.history}
    assert b.history and all(figures[(h.round, h.epoch)] == (h.test_acc, h.train_loss, h.train_acc, h.lr)
                             for h in b.history)
    for ra, rb in zip(a.rounds, b.rounds):
        assert ra.weights.keys() == rb.weights.keys()
        assert all(np.array_equal(ra.weights[n], rb.weights[n]) for n in ra.weights)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("net", sorted(CONFIGS))
def test_rounds_continued_from_an_epochs_state_train_as_if_they_never_stopped(source, engine, net):
    config = tiny(**CONFIGS[net])
    (whole,) = run_configs([config], source, engine=engine)
    states = {}
    run_configs([config.replace(epochs=2)], source, engine=engine,
                on_states=lambda reached: states.update({r: s for _, r, s in reached}))
    assert sorted(states) == [0, 1, 2] and {s.epoch for s in states.values()} == {2}
    (rest,) = run_configs([config], source, engine=engine, start={0: states})
    assert {h.epoch for h in rest.history} == {3, 4}  # only what was left
    same_numbers(whole, rest)


def test_rounds_that_stopped_at_different_epochs_continue_each_from_its_own(source):
    config = tiny(**CONFIGS["fcn"])
    (whole,) = run_configs([config], source)
    states = {}
    run_configs([config.replace(epochs=1)], source,
                on_states=lambda reached: states.update({r: s for _, r, s in reached}))
    later = {}
    run_configs([config.replace(epochs=3)], source,
                on_states=lambda reached: later.update({r: s for _, r, s in reached}))
    mixed = {0: states[0], 1: later[1]}  # round 2 has no state: it starts afresh
    (rest,) = run_configs([config], source, start={0: mixed})
    assert sorted((h.round, h.epoch) for h in rest.history) == [(0, 2), (0, 3), (0, 4), (1, 4), (2, 1), (2, 2),
                                                                (2, 3), (2, 4)]
    same_numbers(whole, rest)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_cancelled_run_resumed_equals_the_run_trained_without_a_stop(source, tmp_path, engine):
    config = tiny(**CONFIGS["fcn"])
    group = Group([NamedRun("stopped", config)])

    def on_epoch(rec) -> None:
        if rec.epoch == 2 and (engine == "batched" or rec.round == 1):
            group.cancel(0)

    (stopped,) = train_and_record(group, source, engine=engine, runs_root=tmp_path, on_epoch=on_epoch)
    assert stopped.summary.status == "cancelled" and (stopped.summary.path / RESUME_FILE).exists()
    run, used, digits = continuation_of(stopped.summary.id, tmp_path)
    assert (used, digits, run.name, run.config) == (engine, source.name, "stopped", config)
    (resumed,) = train_and_record([run], source, engine=used, runs_root=tmp_path)
    (whole,) = train_and_record([NamedRun("whole", config)], source, engine=engine)
    assert resumed.summary.status == "done" and resumed.summary.continues == stopped.summary.id
    assert resumed.summary.round_acc == whole.summary.round_acc
    same_numbers(whole.result, resumed.result)
    # the resumed record holds every epoch; the cancelled one went to the trash, from which it comes back
    assert len(resumed.result.history) == 12
    assert [s.id for s in load_runs(tmp_path)[0]] == [resumed.summary.id]
    assert "runs restore" in resumed.said and (tmp_path / ".trash" / stopped.summary.id / "summary.json").exists()


def test_a_done_run_extended_equals_a_fresh_run_of_the_longer_config(source, tmp_path):
    config = tiny(epochs=2, **CONFIGS["cnn"])
    (short,) = train_and_record([NamedRun("short", config)], source, runs_root=tmp_path)
    with pytest.raises(ResumeUnreadable, match="done at its 2 epochs: --epochs N"):
        continuation_of(short.summary.id, tmp_path)
    run, engine, _ = continuation_of(short.summary.id, tmp_path, epochs=4)
    assert run.name == "short epochs 4" and run.config == config.replace(epochs=4)
    (longer,) = train_and_record([run], source, engine=engine, runs_root=tmp_path)
    (fresh,) = train_and_record([NamedRun("fresh", config.replace(epochs=4))], source)
    same_numbers(fresh.result, longer.result)
    assert {s.id for s in load_runs(tmp_path)[0]} == {short.summary.id, longer.summary.id}  # the short one stays


def test_a_killed_run_leaves_a_checkpoint_that_resume_finishes_with_the_uninterrupted_numbers(tmp_path):
    runs = tmp_path / "runs"
    flags = ["--subnet", "fcn", "--hl", "64", "--c-hl", "16", "--rounds", "2", "--pairs", "1000", "--batch-size",
             "5", "--device", "cpu", "--runs-dir", str(runs)]
    command = [sys.executable, "-m", "workbench", "run", *flags]
    child = subprocess.Popen([*command, "--epochs", "400", "--name", "killed"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not list(runs.glob(f"*/{RESUME_FILE}")):
            assert time.monotonic() < deadline and child.poll() is None, "no checkpoint was written"
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    (folder,) = [p for p in runs.iterdir() if p.is_dir()]
    assert not (folder / "summary.json").exists() and (folder / RUN_FILE).exists()
    assert [f"{folder}: interrupted" in line for line in tidy_abandoned(runs)] == [True]
    states, history = read_states(folder, from_dict(json.loads((folder / RUN_FILE).read_text())["config"]))
    reached = min(s.epoch for s in states.values())
    assert 1 <= reached < 400
    target = reached + 2  # finish a short way on, then compare with a run trained straight to there
    done = subprocess.run([sys.executable, "-m", "workbench", "resume", folder.name, "--epochs", str(target),
                           "--runs-dir", str(runs)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["name"] == "killed" and summary["status"] == "done" and not (folder / RUN_FILE).exists()
    straight = subprocess.run([*command, "--epochs", str(target), "--name", "straight"], capture_output=True,
                              text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    (other,) = [s for s in load_runs(runs)[0] if s.name == "straight"]
    assert summary["round_acc"] == other.round_acc


def test_what_cannot_continue_says_why_in_one_line(source, tmp_path):
    config = tiny(epochs=2, **CONFIGS["fcn"])
    (none,) = train_and_record([NamedRun("none", config, weights="none")], source, runs_root=tmp_path)
    with pytest.raises(ResumeUnreadable, match="no state to continue from was kept"):
        continuation_of(none.summary.id, tmp_path, epochs=3)
    (kept,) = train_and_record([NamedRun("kept", config)], source, runs_root=tmp_path)
    path = kept.summary.path / RESUME_FILE
    whole = path.read_bytes()
    with pytest.raises(ResumeUnreadable, match="--epochs: round 0 of .* has trained 2 epochs already"):
        check_history(*read_states(kept.summary.path, config), kept.summary.id, 1)  # fewer than it has
    path.write_bytes(whole[: len(whole) // 2])  # cut short
    with pytest.raises(ResumeUnreadable, match=f"^{path}: cannot be read"):
        continuation_of(kept.summary.id, tmp_path, epochs=3)
    np.savez(path, **{"history": np.zeros((1, 8)), "round0/epoch": np.array(2), "round0/steps": np.array(40.0),
                      "round0/lr": np.array(0.001)})  # foreign: no network in it
    with pytest.raises(ResumeUnreadable, match="is missing: not this run's network"):
        continuation_of(kept.summary.id, tmp_path, epochs=3)
    with pytest.raises(LookupError, match="no run with id or name 'nothing'"):
        continuation_of("nothing", tmp_path)
    summary = kept.summary.path / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": "failed", "reason": "diverged"}))
    with pytest.raises(ResumeUnreadable, match=r"\(diverged\): a failed run does not continue"):
        continuation_of(kept.summary.id, tmp_path, epochs=3)


def test_checkpoints_are_written_only_for_runs_that_keep_weights_and_never_for_unsaved_runs(source, tmp_path):
    config = tiny(epochs=2, **CONFIGS["basic"])
    train_and_record([NamedRun("none", config, weights="none"), NamedRun("first", config.replace(seed=1),
                                                                         weights="first")], source, runs_root=tmp_path)
    kept = {s.name: sorted(p.name for p in s.path.iterdir()) for s in load_runs(tmp_path)[0]}
    assert RESUME_FILE not in kept["none"] and RESUME_FILE not in kept["first"]  # a done run keeps it with all rounds
    assert all(RUN_FILE not in files and ".writer" not in files for files in kept.values())


async def test_g_in_the_results_continues_a_cancelled_run_and_its_record_replaces_the_cancelled_one(source, tmp_path):
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.results import ResultsTable

    config = tiny(**CONFIGS["fcn"])
    group = Group([NamedRun("stopped", config)])
    (stopped,) = train_and_record(group, source, runs_root=tmp_path / "runs",
                                  on_epoch=lambda rec: group.cancel(0) if rec.epoch == 2 else None)
    (whole,) = train_and_record([NamedRun("whole", config)], source)
    from workbench.tui.details import notes_text

    assert "g resumes it" in notes_text(stopped.summary)  # its details say so
    app = WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "export.csv")
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(ResultsTable)
        deadline = time.monotonic() + 30
        while stopped.summary.id not in table.summaries:
            assert time.monotonic() < deadline
            await pilot.pause(0.1)
        table.focus()
        await pilot.press("g")
        while not (app.runs.idle and any(s.status == "done" for s in table.summaries.values())):
            assert time.monotonic() < deadline + 60
            await pilot.pause(0.1)
        await pilot.pause(0.3)
        (resumed,) = table.summaries.values()  # the cancelled row left with its record
        assert resumed.status == "done" and resumed.continues == stopped.summary.id and resumed.name == "stopped"
        assert resumed.round_acc == whole.summary.round_acc
        assert f"continues {stopped.summary.id}" in notes_text(resumed) and "g resumes" not in notes_text(resumed)
        await pilot.press("g")  # a done run continues only from the command line, with more epochs
        await pilot.pause(0.2)
        assert any("--epochs N" in str(n.message) for n in app._notifications)


def test_a_run_cancelled_long_after_its_last_checkpoint_trains_the_epochs_since_again_to_the_same_numbers(
        source, tmp_path, monkeypatch):
    import workbench.engine.state as state

    monkeypatch.setattr(state, "TAKING_SHARE", 1e-9)  # states taken after the first epoch and the last only
    config = tiny(epochs=5, **CONFIGS["fcn"])
    group = Group([NamedRun("stopped", config)])
    (stopped,) = train_and_record(group, source, runs_root=tmp_path,
                                  on_epoch=lambda rec: group.cancel(0) if (rec.epoch, rec.round) == (4, 2) else None)
    assert [r["epochs"] for r in stopped.summary.rounds] == [4, 4, 4]  # the record holds every reported epoch
    states, history = read_states(stopped.summary.path, config)
    assert {s.epoch for s in states.values()} == {1} and {h.epoch for h in history} == {1}
    run, engine, _ = continuation_of(stopped.summary.id, tmp_path)
    (resumed,) = train_and_record([run], source, engine=engine, runs_root=tmp_path)
    (whole,) = train_and_record([NamedRun("whole", config)], source)
    same_numbers(whole.result, resumed.result)
    assert sorted((h.round, h.epoch) for h in resumed.result.history) == [(r, e) for r in range(3) for e in range(1, 6)]


def test_a_run_continues_only_on_the_kind_of_device_it_trained_on(source, tmp_path):
    config = tiny(epochs=2, **CONFIGS["fcn"]).replace(device="auto")  # auto: the CPU here
    (done,) = train_and_record([NamedRun("here", config)], source, runs_root=tmp_path)
    assert continuation_of(done.summary.id, tmp_path, epochs=3)[0].config.epochs == 3
    summary = done.summary.path / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "device": "cuda (NVIDIA H200)"}))
    if DEVICE == "cpu":  # a GPU run's record on a machine without one
        with pytest.raises(ResumeUnreadable, match=r"trained on cuda \(NVIDIA H200\); here it would train on cpu"):
            continuation_of(done.summary.id, tmp_path, epochs=3)


def test_a_checkpoint_that_cannot_be_written_costs_a_line_not_the_run(source, tmp_path, monkeypatch):
    import errno

    import workbench.records.checkpoint as checkpoint

    real = checkpoint.atomic_write_bytes

    def full(path, data):  # checkpoints fail; the record's own resume.npz is written through records/store.py
        if path.name == RESUME_FILE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", full)
    (r,) = train_and_record([NamedRun("kept", tiny(epochs=2, **CONFIGS["fcn"]))], source, runs_root=tmp_path)
    assert r.summary.status == "done" and not r.unsaved and (r.summary.path / RESUME_FILE).exists()
    assert "kept: a checkpoint could not be written" in r.said and "No space left on device" in r.said


def test_two_resumes_of_one_run_at_once_the_second_is_refused(source, tmp_path):
    import fcntl

    config = tiny(epochs=1, **CONFIGS["fcn"])
    (kept,) = train_and_record([NamedRun("kept", config)], source, runs_root=tmp_path)
    other = os.open(kept.summary.path, os.O_RDONLY)  # another process's hold: an open of its own
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ResumeUnreadable, match=f"{kept.summary.id} is being continued by another process"):
            continuation_of(kept.summary.id, tmp_path, epochs=2)
    finally:
        os.close(other)
    run, _, _ = continuation_of(kept.summary.id, tmp_path, epochs=2)  # free again: it continues
    assert run.config.epochs == 2


def test_a_run_killed_before_its_first_checkpoint_says_so_not_blames_weights(tmp_path):
    import socket

    folder = tmp_path / "20260101-000000-abcdef"
    folder.mkdir()
    (folder / ".writer").write_text(f"{socket.gethostname()}:999999999\n")  # a writer that is gone
    (folder / RUN_FILE).write_text("{}")
    with pytest.raises(ResumeUnreadable, match="interrupted before its first checkpoint") as err:
        continuation_of("abcdef", tmp_path)
    assert "--weights" not in str(err.value)
