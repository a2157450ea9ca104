"""The lab notebook over run records: finding runs by what they are or what the user calls them, their tags and
notes (pruning them is records/trash.py's). The app and the `runs`, `compare` and `plot` commands use it.
Torch-free."""

from __future__ import annotations

import dataclasses

from workbench.records.layout import is_run, names_run
from workbench.records.schema import MAX_NAME, MAX_NOTE, MAX_TAG, MAX_TAGS
from workbench.records.store import RunSummary, write_summary

UNFINISHED = ("failed", "cancelled")


class NoSuchRun(LookupError):
    """A reference that names no run, or several; `ref` is the reference as given."""

    def __init__(self, message: str, ref: str):
        super().__init__(message)
        self.ref = ref


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
    """A note as kept: trimmed, lines and tabs allowed; ValueError when longer than a record keeps or holding
    another control character (an escape sequence would reach every terminal and spreadsheet it is shown in)."""
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ValueError(f"a note of at most {MAX_NOTE} characters, got {len(note)}")
    bad = next((ch for ch in note if (ch < " " and ch not in "\n\t") or "\x7f" <= ch <= "\x9f"), None)
    if bad is not None:
        raise ValueError(f"a note without control characters (lines and tabs are fine), got {ascii(bad)}")
    return note


def unfinished_last(summaries: list[RunSummary]) -> list[RunSummary]:
    """The same order, failed and cancelled runs moved after the others (whichever way the rest is sorted)."""
    return sorted(summaries, key=lambda s: s.status in UNFINISHED)


def annotate(summary: RunSummary, tags: list[str], note: str, name: str | None = None) -> RunSummary:
    """The run's record with new tags and note (and name, when given), rewritten whole; OSError when the record is
    no longer where it was read (moved to the trash, deleted)."""
    if summary.path is None or not is_run(summary.path):
        raise FileNotFoundError(2, "no record there any more", str(summary.path))
    updated = dataclasses.replace(summary, tags=list(tags), note=note, name=summary.name if name is None else name)
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
            raise NoSuchRun(f"{ref!r} starts or ends {len(prefix)} run ids ({', '.join(p.id for p in prefix[:3])}…): "
                              "give more of it", ref)
        elif named:
            picked.append(max(named, key=lambda s: (s.started_at, s.id)))
        else:
            raise NoSuchRun(f"no run with id or name {ref!r} in {summaries[0].path.parent if summaries and summaries[0].path else 'the runs directory'}", ref)
        if picked[-1] in picked[:-1]:
            raise NoSuchRun(f"{ref!r} names run {picked[-1].id} ({picked[-1].name}) again", ref)
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
