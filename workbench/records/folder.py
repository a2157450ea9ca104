"""A run folder's life, in one home: claimed (mkdir, so two writers never share one) and named by its writer,
described while it trains, taken over when a killed run continues, released once its record is whole, dropped
when a claim is cut short, tidied when its writer died; and which folders are runs or unfinished ones. Every
other module asks here. The file names are records/layout.py's.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import time
from pathlib import Path

from workbench.fsutil import atomic_write_text
from workbench.procs import owner_gone, owner_tag
from workbench.records.layout import RESUME_FILE, RUN_FILE, WRITER_FILE, is_run, is_temporary, names_run

CLAIM_GRACE_S = 60  # a claim is named in the same step it is made: an empty one this old was cut short


def runs_dir() -> Path:
    """DIGIT_WORKBENCH_RUNS, else ./runs (an empty value is no value: never the current directory itself)."""
    return Path(os.environ.get("DIGIT_WORKBENCH_RUNS") or "runs")


def new_run_dir(root: Path, about: dict | None = None) -> tuple[str, Path]:
    """Claim a fresh run folder, named by its writer so that what a killed writer left can be told from a run
    still being written; with `about`, described (run.json) so that a killed run can be continued. A claim that
    cannot be made whole (a full disk) does not stay behind."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        path = root / run_id
        try:
            path.mkdir()
        except FileExistsError:
            continue
        try:
            (path / WRITER_FILE).write_text(owner_tag() + "\n")
            if about is not None:
                atomic_write_text(path / RUN_FILE, json.dumps(about, indent=2) + "\n")
        except BaseException:
            drop(path)
            raise
        return run_id, path


def take_over(path: Path) -> None:
    """A killed run's folder, continued by this process: it names this process as its writer now, and what the
    killed writer left half-written (its temporary files) goes."""
    atomic_write_text(path / WRITER_FILE, owner_tag() + "\n")
    drop_temporaries(path)


def release(path: Path) -> None:
    """A whole record: nobody writes it any more, and it is no longer a run to continue."""
    (path / RUN_FILE).unlink(missing_ok=True)
    (path / WRITER_FILE).unlink(missing_ok=True)
    let_go(path)


class FolderBusy(OSError):
    """Another process continues this run already."""


_held: dict[str, int] = {}  # real path -> the open folder this process holds a lock on


def hold(path: Path) -> None:
    """This process alone continues the run in `path`, until `let_go` or its exit (the kernel drops the lock of a
    killed process): two `resume` of one run at once would leave two copies. FolderBusy when another holds it."""
    key = os.path.realpath(path)
    if key in _held:
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise FolderBusy(f"{path.name} is being continued by another process already") from None
    _held[key] = fd


def let_go(path: Path) -> None:
    fd = _held.pop(os.path.realpath(path), None)
    if fd is not None:
        os.close(fd)


def drop_temporaries(path: Path) -> None:
    """What a dead writer left half-written in a folder (its temporary files) goes."""
    for tmp in path.glob(".*.tmp"):
        if is_temporary(tmp.name):
            tmp.unlink(missing_ok=True)


def drop(path: Path) -> None:
    """A half-made claim goes, whatever it holds."""
    shutil.rmtree(path, ignore_errors=True)


def drop_unstarted(folders) -> None:
    """Folders claimed for runs that never started (refused): nothing of theirs was computed."""
    for folder in folders:
        if not (folder / RESUME_FILE).exists():
            drop(folder)


def writer_gone(path: Path) -> bool:
    """Whether the process that claimed a run directory has died (on this machine; elsewhere we cannot tell). A
    claim that names no writer, a minute after it was made, was cut short (a full disk): nobody writes it."""
    try:
        tag = (path / WRITER_FILE).read_text()
        if not tag.strip():
            return time.time() - (path / WRITER_FILE).stat().st_mtime > CLAIM_GRACE_S
        return owner_gone(tag)
    except FileNotFoundError:  # killed between the claim and its tag: an untagged folder past the grace is nobody's
        try:
            return time.time() - path.stat().st_mtime > CLAIM_GRACE_S
        except OSError:
            return False
    except OSError:
        return False


def unfinished_folders(root: Path) -> list[Path]:
    """The folders under root that are no run (yet): being written, or left by a writer that died."""
    if not Path(root).is_dir():
        return []
    return [p for p in sorted(Path(root).iterdir()) if p.is_dir() and not is_run(p)]


def tidy_abandoned(root: Path | None = None) -> list[str]:
    """What a killed writer left under root: its temporary files go, a directory left empty goes; a directory
    that still holds a config or history stays, and is named as incomplete. Runs still being written, and runs
    whose writer is on another machine, are not touched."""
    said = []
    for path in unfinished_folders(root or runs_dir()):
        if not writer_gone(path):
            continue
        drop_temporaries(path)
        note = _left_behind(path)
        if note:
            said.append(note)
        else:  # killed before its first checkpoint: nothing it computed is here
            release(path)
            path.rmdir()
    return said


def _left_behind(path: Path) -> str:
    """What a folder whose writer died holds, in one line ('' when nothing of what it computed)."""
    kept = sorted(p.name for p in path.iterdir() if p.name not in (WRITER_FILE, RUN_FILE)
                  and not is_temporary(p.name))
    if RESUME_FILE in kept:
        return (f"{path}: interrupted before its record was written; `digit-workbench resume {path.name}` "
                "continues it from its last checkpoint")
    if kept:
        return f"{path}: incomplete, its writer died before the summary ({', '.join(kept)} kept)"
    return ""


def unfinished_notes(root: Path) -> list[str]:
    """A line for each folder under root that is no run yet, without touching any: training now, interrupted
    (and how to continue it), or left incomplete."""
    notes = []
    for path in unfinished_folders(root):
        try:
            note = _left_behind(path) if writer_gone(path) else f"{path}: training now, no record yet"
        except OSError:
            continue
        notes.append(note or f"{path}: interrupted before its first checkpoint; nothing it computed is kept")
    return notes


def unfinished(root: Path, ref: str) -> list[Path]:
    """The unfinished folders under root that `ref` names (layout.names_run)."""
    return [p for p in unfinished_folders(root) if names_run(p.name, ref)]
