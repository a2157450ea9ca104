"""The trash under the runs directory (runs/.trash): deleting is the most dangerous verb, so it lives here alone.
Records move there whole (one rename each), come back whole, and are deleted only when emptied. Nothing here
follows a link out of the runs directory, copies across file systems, or deletes a folder that is not a record
the workbench wrote; what it will not do it refuses in one line (TrashRefused), naming the path. Torch-free."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from workbench.records.folder import runs_dir, unfinished, writer_gone
from workbench.records.layout import (RECORD_FILES, RESUME_FILE, RUN_FILE, SUMMARY_FILE, TRASH, WRITER_FILE,
                                      is_run, is_temporary, names_run)
from workbench.records.store import RunSummary, load_runs

# what a run folder may hold: its record's files, an old record's config.json (and a write cut short)
KNOWN_ENTRIES = {*RECORD_FILES, RESUME_FILE, RUN_FILE, WRITER_FILE, "config.json"}


class TrashRefused(OSError):
    """What the trash will not do, in one line naming the path; `done` holds the ids it did before."""

    def __init__(self, message: str, done: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.done = list(done or [])

    def __str__(self) -> str:
        return self.message


@dataclass
class Outcome:
    """The ids a trash verb moved or deleted, and a line for each it left, saying why."""

    done: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def trash_dir(root: Path | None = None) -> Path:
    return (root or runs_dir()) / TRASH


def _why_not_a_folder(path: Path) -> str | None:
    """Why `path` is no plain folder of its own (a link, a file, a device), or None when it is one."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        return f"is a link (to {os.readlink(path)}), not a folder"
    if not stat.S_ISDIR(mode):
        return "is not a folder"
    return None


def usable_trash(root: Path, create: bool) -> Path | None:
    """The trash folder, checked: a plain folder under root, on root's file system (a move is a rename, never a
    copy), made when `create`; None when there is none and none is made. TrashRefused otherwise."""
    trash = trash_dir(root)
    why = _why_not_a_folder(trash)
    if why:
        raise TrashRefused(f"{trash} {why}; the trash must be a plain folder: move it aside and try again")
    if not trash.exists():
        if not create:
            return None
        try:
            trash.mkdir()
        except OSError as exc:
            raise TrashRefused(f"cannot make the trash {trash}: {exc.strerror or exc}") from None
    if os.stat(trash).st_dev != os.stat(root).st_dev:
        raise TrashRefused(f"{trash} is on another file system than {root}; a move there would be a copy: "
                           "make it a plain folder on the same disk")
    return trash


def why_not_a_record(folder: Path) -> str | None:
    """Why a folder is not a finished record the workbench wrote (a link, no summary, a file it never writes), or
    None when it is one."""
    why = _why_not_a_folder(folder)
    if why or not folder.exists():
        return why or "is not there"
    summary = folder / SUMMARY_FILE
    if summary.is_symlink() or not summary.is_file():
        return f"holds no {SUMMARY_FILE} of its own (still being written, or no run)"
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    foreign = [n for n in names if n not in KNOWN_ENTRIES and not is_temporary(n)]
    if foreign:
        return f"holds {foreign[0]!r}, which the workbench never writes"
    links = [n for n in names if (folder / n).is_symlink()]
    if links:
        return f"holds a link, {links[0]!r}, which the workbench never writes"
    return None


def _move(source: Path, target: Path, done: list[str], verb: str) -> None:
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            why = "they are on different file systems"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = f"{source.parent} or {target.parent} is read-only"
        else:
            why = exc.strerror or str(exc)
        raise TrashRefused(f"cannot {verb} {source} to {target.parent}: {why}", done) from None


def move_to_trash(ids: list[str], root: Path | None = None) -> Outcome:
    """Moves whole, finished records into the trash, one rename each: a record is in one place or the other."""
    root = root or runs_dir()
    out = Outcome()
    trash = None
    for run_id in ids:
        source = root / run_id
        why = why_not_a_record(source)
        if why:
            out.left.append(f"{source} stays: it {why}")
            continue
        trash = trash or usable_trash(root, create=True)
        if os.path.lexists(trash / run_id):  # an earlier copy of this record: the newer one is not dropped over it
            out.left.append(f"{source} stays: the trash holds a record {run_id} already")
            continue
        _move(source, trash / run_id, out.done, "move")
        out.done.append(run_id)
    return out


def restore(ids: list[str], root: Path | None = None) -> Outcome:
    """Moves records back from the trash."""
    root = root or runs_dir()
    out = Outcome()
    trash = usable_trash(root, create=False)
    for run_id in ids:
        if trash is None:
            out.left.append(f"{run_id} is not in the trash: {trash_dir(root)} does not exist")
            continue
        source = trash / run_id
        why = why_not_a_record(source)
        if why:
            out.left.append(f"{source} stays: it {why}")
        elif os.path.lexists(root / run_id):
            out.left.append(f"{run_id} stays in the trash: {root / run_id} exists already (the same run, restored "
                            "or continued)")
        else:
            _move(source, root / run_id, out.done, "restore")
            out.done.append(run_id)
    return out


def trashed(root: Path | None = None) -> list[RunSummary]:
    """The records in the trash (none when the trash is no plain folder: TrashRefused says so)."""
    trash = usable_trash(root or runs_dir(), create=False)
    return [] if trash is None else load_runs(trash)[0]


def empty_trash(root: Path | None = None) -> Outcome:
    """Deletes the records the trash holds, for good. Anything else in it (a file, a link, a folder the workbench
    did not write) stays, and is named."""
    trash = usable_trash(root or runs_dir(), create=False)
    out = Outcome()
    if trash is None:
        return out
    for entry in sorted(trash.iterdir()):
        why = why_not_a_record(entry)
        if why:
            out.left.append(f"{entry} stays: it {why}")
            continue
        try:
            shutil.rmtree(entry)  # never follows a link (none is there: checked above)
        except OSError as exc:
            raise TrashRefused(f"cannot delete {entry}: {exc.strerror or exc}", out.done) from None
        out.done.append(entry.name)
    return out


def whereabouts(ref: str, root: Path, in_trash: bool = False) -> str:
    """Where a reference that names no run where it was looked for (the runs directory, or the trash when
    `in_trash`) points: a run still training or interrupted, the other place, or nowhere (''); one sentence."""
    if in_trash:
        here = [p.name for p in _entries(root) if is_run(p) and names_run(p.name, ref)]
        return f"{here[0]} is not in the trash: it is in {root}" if here else ""
    for folder in unfinished(root, ref):
        if writer_gone(folder):
            return f"{folder.name} was interrupted before its record was written (`digit-workbench resume {folder.name}`)"
        return f"{folder.name} is still training: its record is written when it ends"
    trash = trash_dir(root)
    gone = [p.name for p in _entries(trash) if names_run(p.name, ref)] if not _why_not_a_folder(trash) else []
    return f"{gone[0]} is in the trash (`digit-workbench runs restore {gone[0]}` brings it back)" if gone else ""


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []
