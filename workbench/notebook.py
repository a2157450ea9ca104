"""The lab notebook over run records: finding runs by what they are, and pruning them without losing anything by
accident (a trash folder under the runs directory: moved there whole, restored whole, emptied only when asked).
The app's results table and the `runs` command both use it. Torch-free."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .config import FIELDS, SHORT_LABELS
from .format import setting
from .runs import RunSummary, load_runs, runs_dir
from .schema import MAX_NOTE, MAX_TAG, MAX_TAGS

TRASH = ".trash"  # under the runs directory; a dot folder, so no reader of runs/ takes it for a run
UNFINISHED = ("failed", "cancelled")


def parse_tags(raw: list[str] | str) -> list[str]:
    """Tags as a user gives them (comma-separated, or one per --tag): trimmed, each once, in order; ValueError
    saying what is wrong with them."""
    items = [raw] if isinstance(raw, str) else list(raw)
    tags: list[str] = []
    for item in items:
        for tag in (t.strip() for t in item.split(",")):
            if not tag or tag in tags:
                continue
            if len(tag) > MAX_TAG:
                raise ValueError(f"a tag of at most {MAX_TAG} characters, got {tag[:20]!r}…")
            if any(ch < " " or ch == "\x7f" for ch in tag):
                raise ValueError(f"a tag without control characters, got {tag!r}")
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags, got {len(tags)}")
    return tags


def check_note(note: str) -> str:
    """A note as kept: trimmed; ValueError when longer than a record keeps."""
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ValueError(f"a note of at most {MAX_NOTE} characters, got {len(note)}")
    return note


def matches(summary: RunSummary, text: str) -> bool:
    """Whether a run matches a filter: every word somewhere in its name, id, status, tags, note, net or settings'
    values; a word with `=` names one setting by key, label or short label (`alpha=0.2`, `hl=128`, `batch=10`)."""
    c = summary.config
    settings = {f"{name}={setting(value)}".lower() for key, value in c.to_dict().items()
                for name in (key, FIELDS[key].label.replace(" ", "_"), SHORT_LABELS.get(key) or key)}
    haystack = " ".join([summary.name, summary.id, summary.status, summary.preset or "", *summary.tags,
                         summary.note, c.subnet,
                         "ws" if c.weight_sharing else "", "aux" if c.aux_loss else "", *sorted(settings),
                         summary.device]).lower()
    return all((word in settings) if "=" in word else (word in haystack) for word in text.lower().split())


def unfinished_last(summaries: list[RunSummary]) -> list[RunSummary]:
    """The same order, failed and cancelled runs moved after the others (whichever way the rest is sorted)."""
    return sorted(summaries, key=lambda s: s.status in UNFINISHED)


def trash_dir(root: Path | None = None) -> Path:
    return (root or runs_dir()) / TRASH


def move_to_trash(ids: list[str], root: Path | None = None) -> list[str]:
    """Moves whole, finished records into the trash (one rename each: a record is in one place or the other);
    returns the ids moved. A run not on disk, or not finished writing, is left where it is."""
    root = root or runs_dir()
    finished = {s.id for s in load_runs(root)[0]}
    trash = trash_dir(root)
    moved = []
    for run_id in ids:
        source = root / run_id
        if run_id not in finished or source.is_symlink() or not source.is_dir():
            continue
        trash.mkdir(parents=True, exist_ok=True)
        if (trash / run_id).exists():  # an earlier copy of this record: the newer one is not dropped over it
            continue
        os.rename(source, trash / run_id)
        moved.append(run_id)
    return moved


def restore(ids: list[str], root: Path | None = None) -> list[str]:
    """Moves records back from the trash; returns the ids restored (a run already back in place stays)."""
    root = root or runs_dir()
    trash = trash_dir(root)
    restored = []
    for run_id in ids:
        source = trash / run_id
        if not source.is_dir() or (root / run_id).exists():
            continue
        os.rename(source, root / run_id)
        restored.append(run_id)
    return restored


def trashed(root: Path | None = None) -> list[RunSummary]:
    return load_runs(trash_dir(root))[0]


def empty_trash(root: Path | None = None) -> int:
    """Deletes what the trash holds, for good; returns how many records went."""
    trash = trash_dir(root)
    if not trash.is_dir():
        return 0
    gone = 0
    for entry in sorted(trash.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        gone += 1
    return gone
