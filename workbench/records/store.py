"""A run's record: its summary (RunSummary) and history, written whole (temporary file, then rename) into the
folder claimed for it (records/folder.py), the summary last; read back, checked against the schema. The only
writer and reader of summary.json and history.csv; the file names are records/layout.py's.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.fsutil import atomic_write_bytes, atomic_write_text, open_input, read_input_text
from workbench.paper.config import ConfigError, RunConfig, from_dict
from workbench.paper.presets import PaperScore
from workbench.records.folder import drop, new_run_dir, release, runs_dir, take_over
from workbench.records.layout import (HISTORY_FILE, PREDICTIONS_FILE, RECORD_FILES, RESUME_FILE, RUN_FILE, SUMMARY_FILE,
                                      WEIGHTS_FILE, is_run)
from workbench.records.provenance import code_version
from workbench.records.schema import check_summary
from workbench.records.weights import weights_npz

BESIDE_THE_SUMMARY = ("predictions", "weights")  # a round's arrays: in files of their own, not in summary.json
HISTORY_LIMIT = 256 << 20  # 100 rounds x 1,000 epochs of history is 10 MB
HISTORY_FIELDS = ["round", "epoch", "train_loss", "train_acc", "test_acc", "digit_acc", "lr", "seconds"]


@dataclass
class RunSummary:
    """What a results table, a comparison or an export needs of one run."""

    id: str
    name: str
    preset: str | None
    status: str
    reason: str
    config: RunConfig
    round_acc: list[float]
    mean: float | None
    std: float | None
    paper: PaperScore | None
    wall_time: float
    device: str
    data_source: str
    engine: str
    started_at: float
    versions: dict[str, str] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    saved_at: float = 0.0
    path: Path | None = None
    edited: bool | None = None  # its config is no longer its preset's (None: a record from before this was kept)
    tags: list[str] = field(default_factory=list)  # the user's words for it (notebook.parse_tags)
    note: str = ""
    continues: str | None = None  # the id of the record this run continued (training/continuing.py)
    cost: dict[str, float] = field(default_factory=dict)  # CPU seconds and peak MiB while it trained (provenance)

    @property
    def difference(self) -> float | None:
        if self.mean is None or self.paper is None:
            return None
        return self.mean - self.paper.score

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "preset": self.preset, "status": self.status, "reason": self.reason,
            "config": self.config.to_dict(), "round_acc": self.round_acc, "mean": self.mean, "std": self.std,
            "paper": None if self.paper is None else vars(self.paper),
            "wall_time": self.wall_time, "device": self.device, "data_source": self.data_source,
            "engine": self.engine, "started_at": self.started_at, "versions": self.versions, "rounds": self.rounds,
            "saved_at": self.saved_at, "edited": self.edited, "tags": self.tags, "note": self.note,
            **({"continues": self.continues} if self.continues else {}),
            **({"cost": self.cost} if self.cost else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path | None = None) -> RunSummary:
        """A summary read back; a record of the wrong shape is a ValueError naming the field (records/schema.py)."""
        check_summary(d)
        paper = d.get("paper")
        return cls(
            id=str(d["id"]), name=str(d.get("name") or d["id"]), preset=d.get("preset"), status=str(d["status"]),
            reason=str(d.get("reason", "")), config=from_dict(d["config"], str(path) if path else None),
            round_acc=[float(a) for a in d.get("round_acc", [])], mean=d.get("mean"), std=d.get("std"),
            paper=PaperScore(paper.get("table", ""), paper.get("row", ""), float(paper["score"]), paper.get("std"),
                             paper.get("note", "")) if paper else None, wall_time=float(d.get("wall_time", 0.0)),
            device=str(d.get("device", "")), data_source=str(d.get("data_source", "")),
            engine=str(d.get("engine", "")), started_at=float(d.get("started_at", 0.0)),
            versions=dict(d.get("versions", {})), rounds=list(d.get("rounds", [])),
            saved_at=float(d.get("saved_at", 0.0)), path=path, edited=d.get("edited"), tags=list(d.get("tags", [])),
            note=str(d.get("note", "")), continues=d.get("continues"),
            cost={str(k): float(v) for k, v in d.get("cost", {}).items()})


def summarize(result, name: str, preset: str | None = None, paper: PaperScore | None = None,
              run_id: str = "", edited: bool | None = None, tags: list[str] | tuple = (), note: str = "") -> RunSummary:
    """A RunSummary of an engine RunResult."""
    mean, std = result.mean_std()
    return RunSummary(
        id=run_id, name=name, preset=preset, edited=edited, tags=list(tags), note=note, status=result.status,
        reason=result.reason,
        config=result.config,
        round_acc=result.test_accuracies(), mean=mean, std=std, paper=paper, wall_time=result.wall_time,
        device=result.device, data_source=result.data_source, engine=result.engine, started_at=result.started_at,
        versions={**result.versions, **code_version()}, cost=dict(getattr(result, "cost", {})),
        rounds=[{k: v for k, v in vars(r).items() if k not in BESIDE_THE_SUMMARY} for r in result.rounds])


def history_csv(history) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_FIELDS)
    for rec in history:
        writer.writerow([getattr(rec, f) if not isinstance(rec, dict) else rec.get(f) for f in HISTORY_FIELDS])
    return buffer.getvalue()


def predictions_npz(rounds) -> bytes | None:
    """The rounds' test predictions as one compressed numpy archive (None when no round has them): per round
    and pair the probability, digits, target and auxiliary digits; the kept images with their round and pair."""
    kept = [r for r in rounds if r.predictions is not None]
    if not kept:
        return None
    arrays = {
        "round": np.array([r.round for r in kept], dtype=np.int32),
        "prob": np.stack([r.predictions.prob for r in kept]).astype(np.float16),
        "classes": np.stack([r.predictions.classes for r in kept]),
        "target": np.stack([r.predictions.target for r in kept]),
        "image_round": np.concatenate([np.full(len(r.predictions.image_pairs), r.round, np.int32) for r in kept]),
        "image_pair": np.concatenate([r.predictions.image_pairs for r in kept]),
        "images": np.concatenate([r.predictions.images for r in kept]),
    }
    if all(r.predictions.digit_pred is not None for r in kept):
        arrays["digit_pred"] = np.stack([r.predictions.digit_pred for r in kept])
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


class RunNotSaved(Exception):
    """A run's record could not be written; the message says where and why, the results are still in memory."""


def save_run(result, name: str, preset: str | None = None, paper: PaperScore | None = None,
             root: Path | None = None, edited: bool | None = None, tags: list[str] | tuple = (),
             note: str = "", weights: str = "all", folder: Path | None = None, resume: bytes | None = None,
             continues: str | None = None) -> RunSummary:
    """Write a run's history, predictions, weights (`weights`: all, first or none of its rounds), what it may
    continue from (`resume`, records/checkpoint.py) and summary, in the `folder` claimed for it or a new one; the
    summary goes last, so a listed run is a whole run. Where a file cannot be written (a full disk, a runs directory
    that is a file), what was written goes and RunNotSaved says why."""
    root = root or runs_dir()
    path = None
    try:
        run_id, path = (folder.name, folder) if folder is not None else new_run_dir(root)
        if folder is not None:  # a killed run's folder continued here: this process writes it now
            take_over(path)
        summary = summarize(result, name, preset, paper, run_id, edited, tags, note)
        summary.path, summary.saved_at, summary.continues = path, time.time(), continues
        atomic_write_text(path / HISTORY_FILE, history_csv(result.history))
        predictions = predictions_npz(result.rounds)
        if predictions is not None:
            atomic_write_bytes(path / PREDICTIONS_FILE, predictions)
        kept = weights_npz(result.rounds, weights)
        if kept is not None:
            atomic_write_bytes(path / WEIGHTS_FILE, kept)
        if resume is not None:
            atomic_write_bytes(path / RESUME_FILE, resume)
        else:
            (path / RESUME_FILE).unlink(missing_ok=True)  # a checkpoint the record does not keep
        write_summary(summary)
        release(path)
        return summary
    except BaseException as exc:  # a full disk, or a second Ctrl-C that quits at once: nothing partial stays
        kept = path is not None and (path / RESUME_FILE).exists() and (path / RUN_FILE).exists()
        if kept:  # a checkpoint of what was computed stays, resumable; the record's own files go
            for file in RECORD_FILES:
                (path / file).unlink(missing_ok=True)
        elif path is not None:
            drop(path)
        if not isinstance(exc, OSError):
            raise
        where = exc.filename or root
        why = "not a directory" if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror or exc
        stays = f" (its last checkpoint stays: `digit-workbench resume {path.name}` finishes it)" if kept else ""
        raise RunNotSaved(f"{name}: not saved to {where}: {why}{stays}") from None


def load_history(path: Path) -> list[dict[str, Any]]:
    """A run's history.csv; ValueError naming the line where a column is missing or extra, a row is cut short, or
    a value is no number (round and epoch: whole numbers from 0)."""
    rows = []
    with io.TextIOWrapper(open_input(path / HISTORY_FILE, HISTORY_LIMIT), encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = set(HISTORY_FIELDS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"history.csv lacks the columns {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            if None in row or None in row.values():
                raise ValueError(f"history.csv line {line}: {len(reader.fieldnames)} fields expected")
            values = {k: (None if v in ("", "None") else float(v)) for k, v in row.items()}
            if not all(values[k] is not None and math.isfinite(values[k]) and values[k] == int(values[k]) >= 0
                       for k in ("round", "epoch")):
                raise ValueError(f"history.csv line {line}: round and epoch must be whole numbers from 0")
            rows.append(values)
    return rows


def read_history(summary: RunSummary) -> tuple[list[dict[str, Any]], str]:
    """A run's history, and why it cannot be read ('' when it can, or when the run has no record on disk): an
    unreadable history is an empty one, the rounds' scores still stand."""
    if summary.path is None:
        return [], ""
    try:
        return load_history(summary.path), ""
    except (OSError, ValueError) as exc:
        return [], f"history of {summary.id} cannot be read: {exc}"


def readable_history(summary: RunSummary) -> list[dict[str, Any]]:
    """A run's history, or none when it has none or it cannot be read."""
    return read_history(summary)[0]


class Unreadable(str):
    """The message for a run record that cannot be read, knowing which run it is."""

    run_id: str

    def __new__(cls, text: str, run_id: str) -> Unreadable:
        message = super().__new__(cls, text)
        message.run_id = run_id
        return message


def load_runs(root: Path | None = None, skip: set[str] | frozenset = frozenset()) -> tuple[list[RunSummary], list[str]]:
    """Every complete run under root (but those whose ids are in `skip`), oldest first, and a message for each
    run that cannot be read."""
    root = root or runs_dir()
    summaries, problems = [], []
    if not root.is_dir():
        return summaries, problems
    seen: dict[Path, str] = {}  # real folder -> the name it was read under: a linked folder is one run, once
    for path in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in skip):
        file = path / SUMMARY_FILE
        if file.is_symlink() and not file.exists():
            problems.append(Unreadable(f"{file}: a link that leads to no file", path.name))
            continue
        if not is_run(path):
            continue  # still being written, or killed before its summary: not a run yet
        real = path.resolve()
        if real in seen:
            problems.append(Unreadable(f"{path}: the same folder as {seen[real]}, read once", path.name))
            continue
        seen[real] = path.name
        try:
            summaries.append(read_record(path))
        except RecordUnreadable as exc:
            problems.append(Unreadable(str(exc), path.name))
    summaries.sort(key=lambda s: (s.started_at, s.saved_at, s.id))
    return summaries, problems


class RecordUnreadable(ValueError):
    """A record's summary that cannot be read: the message names its file."""


def read_record(path: Path) -> RunSummary:
    """The record in a run folder; RecordUnreadable (one line, naming the file) when it cannot be read."""
    file = path / SUMMARY_FILE
    try:
        return RunSummary.from_dict(json.loads(read_input_text(file)), path)
    except RecursionError:
        raise RecordUnreadable(f"{file}: cannot be read (nested too deeply to be a summary)") from None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        raise RecordUnreadable(f"{file}: cannot be read ({exc})") from None


def write_summary(summary: RunSummary) -> None:
    """A record's summary, written whole over the one in its folder."""
    atomic_write_text(summary.path / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=2) + "\n")


# ------------------------------------------------------------------ export

