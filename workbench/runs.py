"""Run records on disk, their summaries, and CSV export.

runs/<id>/summary.json      status, the full configuration, per-round results, mean and std, paper score, device,
                            data source, versions (what every reader reads: a listed run is a run with one)
runs/<id>/history.csv       one row per round and epoch
runs/<id>/predictions.npz   each round's test predictions after its last epoch (analysis.py reads them)
runs/<id>/weights.npz       each kept round's trained network (networks.py reads them)

(Records before this layout also hold a config.json, which nothing reads.)

Every file is written whole (temporary file, then rename); a run directory is claimed with mkdir, so two processes
never write into the same one.
"""

from __future__ import annotations

import csv
import io
import re
import json
import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .architecture import weight_count
from .config import FIELDS, ConfigError, RunConfig, from_dict
from .presets import PaperScore
from .fsutil import atomic_write_bytes, atomic_write_text, open_input, read_input_text
from .networks import WEIGHTS_FILE, kept_rounds, weights_npz
from .procs import owner_gone, owner_tag
from .resume import RESUME_FILE, RUN_FILE
from .schema import check_summary

PREDICTIONS_FILE = "predictions.npz"
BESIDE_THE_SUMMARY = ("predictions", "weights")  # a round's arrays: in files of their own, not in summary.json
HISTORY_LIMIT = 256 << 20  # 100 rounds x 1,000 epochs of history is 10 MB
HISTORY_FIELDS = ["round", "epoch", "train_loss", "train_acc", "test_acc", "digit_acc", "lr", "seconds"]


def runs_dir() -> Path:
    """DIGIT_WORKBENCH_RUNS, else ./runs (an empty value is no value: never the current directory itself)."""
    return Path(os.environ.get("DIGIT_WORKBENCH_RUNS") or "runs")


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
    continues: str | None = None  # the id of the record this run continued (resume.py)

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
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path | None = None) -> RunSummary:
        """A summary read back; a record of the wrong shape is a ValueError naming the field (schema.py)."""
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
            note=str(d.get("note", "")), continues=d.get("continues"))


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
        versions=result.versions,
        rounds=[{k: v for k, v in vars(r).items() if k not in BESIDE_THE_SUMMARY} for r in result.rounds])


CLAIM_GRACE_S = 60  # a claim is named in the same step it is made: an empty one this old was cut short
WRITER_FILE = ".writer"  # host:pid of the process writing a run directory, until its summary is written


def new_run_dir(root: Path) -> tuple[str, Path]:
    """Claim a fresh run directory; mkdir is atomic, so concurrent writers never share one. The claim names its
    writer, so that what a killed writer left can be told from a run still being written."""
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
        except OSError:  # a full disk: no claim stays behind, empty or not
            shutil.rmtree(path, ignore_errors=True)
            raise
        return run_id, path


def writer_gone(path: Path) -> bool:
    """Whether the process that claimed a run directory has died (on this machine; elsewhere we cannot tell). A
    claim that names no writer, a minute after it was made, was cut short (a full disk): nobody writes it."""
    try:
        tag = (path / WRITER_FILE).read_text()
        if not tag.strip():
            return time.time() - (path / WRITER_FILE).stat().st_mtime > CLAIM_GRACE_S
        return owner_gone(tag)
    except OSError:
        return False


def tidy_abandoned(root: Path | None = None) -> list[str]:
    """What a killed writer left under root: its temporary files go, a directory left empty goes; a directory
    that still holds a config or history stays, and is named as incomplete. Runs still being written, and runs
    whose writer is on another machine, are not touched."""
    root = root or runs_dir()
    said = []
    if not root.is_dir():
        return said
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not (p / "summary.json").exists()):
        if not writer_gone(path):
            continue
        for tmp in path.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        kept = [p.name for p in path.iterdir() if p.name not in (WRITER_FILE, RUN_FILE)]
        if RESUME_FILE in kept:
            said.append(f"{path}: interrupted before its record was written; `digit-workbench resume {path.name}` "
                        "continues it from its last checkpoint")
        elif kept:
            said.append(f"{path}: incomplete, its writer died before the summary ({', '.join(sorted(kept))} kept)")
        else:  # killed before its first checkpoint: nothing it computed is here
            for file in (WRITER_FILE, RUN_FILE):
                (path / file).unlink(missing_ok=True)
            path.rmdir()
    return said


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
    import numpy as np

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
    continue from (`resume`, resume.py) and summary, in the `folder` claimed for it or a new one; the summary goes
    last, so a listed run is a whole run. Where a file cannot be written (a full disk, a runs directory that is a
    file), what was written goes and RunNotSaved says why."""
    root = root or runs_dir()
    path = None
    try:
        run_id, path = (folder.name, folder) if folder is not None else new_run_dir(root)
        if folder is not None:  # a killed run's folder continued here: this process writes it now
            atomic_write_text(path / WRITER_FILE, owner_tag() + "\n")
        summary = summarize(result, name, preset, paper, run_id, edited, tags, note)
        summary.path, summary.saved_at, summary.continues = path, time.time(), continues
        atomic_write_text(path / "history.csv", history_csv(result.history))
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
        atomic_write_text(path / "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")
        (path / RUN_FILE).unlink(missing_ok=True)
        (path / WRITER_FILE).unlink(missing_ok=True)  # a whole run: nobody writes it any more
        return summary
    except BaseException as exc:  # a full disk, or a second Ctrl-C that quits at once: nothing partial stays
        kept = path is not None and (path / RESUME_FILE).exists() and (path / RUN_FILE).exists()
        if kept:  # a checkpoint of what was computed stays, resumable; the record's own files go
            for file in ("summary.json", "history.csv", PREDICTIONS_FILE, WEIGHTS_FILE):
                (path / file).unlink(missing_ok=True)
        elif path is not None:
            shutil.rmtree(path, ignore_errors=True)
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
    with io.TextIOWrapper(open_input(path / "history.csv", HISTORY_LIMIT), encoding="utf-8", newline="") as f:
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
        file = path / "summary.json"
        if file.is_symlink() and not file.exists():
            problems.append(Unreadable(f"{file}: a link that leads to no file", path.name))
            continue
        if not file.exists():
            continue  # still being written, or killed before its summary: not a run yet
        real = path.resolve()
        if real in seen:
            problems.append(Unreadable(f"{path}: the same folder as {seen[real]}, read once", path.name))
            continue
        seen[real] = path.name
        try:
            summaries.append(RunSummary.from_dict(json.loads(read_input_text(file)), path))
        except RecursionError:
            problems.append(Unreadable(f"{file}: cannot be read (nested too deeply to be a summary)", path.name))
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
            problems.append(Unreadable(f"{file}: cannot be read ({exc})", path.name))
    summaries.sort(key=lambda s: (s.started_at, s.saved_at, s.id))
    return summaries, problems


# ------------------------------------------------------------------ export

HYPERPARAMETERS = [k for k in FIELDS if k != "device"]  # the device a run used is its own column


FORMULA_START = re.compile(r"(?<![^\r\n])([=+\-@\t\r])")  # at the start of the text or of any line in it


def neutralise(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets an apostrophe before it, at the start of every line (a
    line break inside a cell can start a new row in some readers)."""
    return FORMULA_START.sub(r"'\1", value) if isinstance(value, str) else value


def export_columns(max_rounds: int) -> list[str]:
    return (["id", "name", "preset", "tags", "note"] + HYPERPARAMETERS + ["weights", "networks_kept", "test_acc_mean",
                                                                            "test_acc_std"]
            + [f"round_{i}_acc" for i in range(max_rounds)]
            + ["paper_score", "paper_std", "difference", "wall_time_s", "requested_device", "device", "data_source",
               "engine", "status", "reason"])


def export_rows(summaries: list[RunSummary]) -> tuple[list[str], list[list[Any]]]:
    max_rounds = max((len(s.round_acc) for s in summaries), default=0)
    columns = export_columns(max_rounds)
    rows = []
    for s in summaries:
        cfg = s.config.to_dict()
        accs = s.round_acc + [None] * (max_rounds - len(s.round_acc))
        row = ([s.id, s.name, s.preset or "", ", ".join(s.tags), s.note] + [cfg[k] for k in HYPERPARAMETERS]
               + [weight_count(s.config), " ".join(map(str, kept_rounds(s.path)))]
               + [_num(s.mean), _num(s.std)] + [_num(a) for a in accs]
               + [_num(s.paper.score) if s.paper else None, _num(s.paper.std) if s.paper else None,
                  _num(s.difference), round(s.wall_time, 3), s.config.device, s.device, s.data_source, s.engine, s.status, s.reason])
        rows.append([neutralise(v) for v in row])
    return columns, rows


def _num(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def export_csv(summaries: list[RunSummary], out: Path) -> Path:
    """One row per run, written whole or not at all."""
    columns, rows = export_rows(summaries)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)  # a quoted cell keeps its line breaks
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    atomic_write_text(out, buffer.getvalue())
    return out

