"""The lab notebook over run records: finding runs by what they are or what the user calls them, their tags and
notes, and pruning them without losing anything by accident (a trash folder under the runs directory: moved there
whole, restored whole, emptied only when asked). The app and the `runs`, `compare` and `plot` commands use it.
Torch-free."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from workbench.format import setting
from workbench.paper.config import FIELDS, short_label
from workbench.records.folder import runs_dir
from workbench.records.layout import is_run, names_run
from workbench.records.schema import MAX_NAME, MAX_NOTE, MAX_TAG, MAX_TAGS
from workbench.records.store import RunSummary, load_runs, write_summary

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


def check_name(name: str | None) -> str | None:
    """A run's name as the user gives it: trimmed, one line; None (the default name) when empty."""
    name = (name or "").strip()
    if len(name) > MAX_NAME:
        raise ValueError(f"a name of at most {MAX_NAME} characters, got {len(name)}")
    if any(ch < " " or ch == "\x7f" for ch in name):
        raise ValueError(f"a name on one line, without control characters, got {name[:40]!r}")
    return name or None


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
                for name in (key, FIELDS[key].label.replace(" ", "_"), short_label(key))}
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
    trash = trash_dir(root)
    moved = []
    for run_id in ids:
        source = root / run_id
        # the summary is written last, and only then is a record finished: one still being written has none
        if source.is_symlink() or not source.is_dir() or not is_run(source):
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


def annotate(summary: RunSummary, tags: list[str], note: str) -> RunSummary:
    """The run's record with new tags and note, rewritten whole; OSError when the record is no longer where it
    was read (moved to the trash, deleted)."""
    if summary.path is None or not is_run(summary.path):
        raise FileNotFoundError(2, "no record there any more", str(summary.path))
    updated = dataclasses.replace(summary, tags=list(tags), note=note)
    write_summary(updated)
    return updated


def pick_runs(refs: list[str], summaries: list[RunSummary]) -> list[RunSummary]:
    """The runs the user names: by id, by a unique start or end of an id (the app shows its last six characters),
    or by name or preset (the latest such run). Raises LookupError naming the first that matches nothing, or
    matches several ids."""
    picked = []
    for ref in refs:
        exact = [s for s in summaries if s.id == ref]
        prefix = [s for s in summaries if names_run(s.id, ref)]
        named = [s for s in summaries if s.name == ref] or [s for s in summaries if s.preset == ref]
        if exact:
            picked.append(exact[0])
        elif len(prefix) == 1:
            picked.append(prefix[0])
        elif len(prefix) > 1:
            raise LookupError(f"{ref!r} starts or ends {len(prefix)} run ids ({', '.join(p.id for p in prefix[:3])}…): "
                              "give more of it")
        elif named:
            picked.append(max(named, key=lambda s: (s.started_at, s.id)))
        else:
            raise LookupError(f"no run with id or name {ref!r} in {summaries[0].path.parent if summaries and summaries[0].path else 'the runs directory'}")
        if picked[-1] in picked[:-1]:
            raise LookupError(f"{ref!r} names run {picked[-1].id} ({picked[-1].name}) again")
    return picked


def latest_row_runs(summaries: list[RunSummary], presets: list) -> list[RunSummary]:
    """For each preset in turn, its latest finished run whose config is still the preset's row (none for a preset
    without one)."""
    out = []
    for preset in presets:
        rows = [s for s in summaries if s.preset == preset.name and preset.is_row(s.config) and s.status == "done"]
        if rows:
            out.append(max(rows, key=lambda s: (s.started_at, s.id)))
    return out
