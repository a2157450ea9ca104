"""Run records as one CSV: a row per run, every hyperparameter, the rounds' scores and the paper's; a cell a
spreadsheet would run as a formula is neutralised. Written whole or not at all."""

from __future__ import annotations

import csv
import datetime
import io
import re
from pathlib import Path
from typing import Any

from workbench.fsutil import atomic_write_text
from workbench.paper.architecture import weight_count
from workbench.paper.config import FIELDS
from workbench.records.store import RunSummary
from workbench.records.weights import WeightsUnreadable, kept_rounds

HYPERPARAMETERS = [k for k in FIELDS if k != "device"]  # the device a run used is its own column


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # not \t \n \r: a cell may hold lines
FORMULA_START = re.compile(r"(?<![^\r\n])([=+\-@\t\r])")  # at the start of the text or of any line in it


def neutralise(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets an apostrophe before it, at the start of every line (a
    line break inside a cell can start a new row in some readers); a control character other than a line break
    or tab (an escape sequence, from a record written by hand) is written as its escape."""
    if not isinstance(value, str):
        return value
    value = CONTROL.sub(lambda m: ascii(m[0])[1:-1], value)
    return FORMULA_START.sub(r"'\1", value)


def export_columns(max_rounds: int) -> list[str]:
    return (["id", "name", "preset", "tags", "note"] + HYPERPARAMETERS + ["weights", "networks_kept", "test_acc_mean",
                                                                            "test_acc_std"]
            + [f"round_{i}_acc" for i in range(max_rounds)]
            + ["paper_score", "paper_std", "difference", "wall_time_s", "requested_device", "device", "data_source",
               "engine", "status", "reason", "workbench", "commit", "cpu", "isa", "torch", "cpu_s", "peak_mib",
               "started_at", "train_loss_mean", "digit_acc_mean"])


def export_rows(summaries: list[RunSummary]) -> tuple[list[str], list[list[Any]]]:
    max_rounds = max((len(s.round_acc) for s in summaries), default=0)
    columns = export_columns(max_rounds)
    rows = []
    for s in summaries:
        cfg = s.config.to_dict()
        accs = s.round_acc + [None] * (max_rounds - len(s.round_acc))
        row = ([s.id, s.name, s.preset or "", ", ".join(s.tags), s.note] + [cfg[k] for k in HYPERPARAMETERS]
               + [weight_count(s.config), _kept(s)]
               + [_num(s.mean), _num(s.std)] + [_num(a) for a in accs]
               + [_num(s.paper.score) if s.paper else None, _num(s.paper.std) if s.paper else None,
                  _num(s.difference), round(s.wall_time, 3), s.config.device, s.device, s.data_source, s.engine, s.status, s.reason]
               + [s.versions.get(k, "") for k in ("workbench", "commit", "cpu", "isa", "torch")]
               + [s.cost.get("cpu_s"), s.cost.get("peak_mib"), started(s), _num(round_mean(s, "train_loss")),
                  _num(round_mean(s, "digit_acc"))])
        rows.append([neutralise(v) for v in row])
    return columns, rows


def started(summary: RunSummary) -> str:
    """When the run started, in UTC (ISO 8601), '' when the record does not say."""
    if not summary.started_at:
        return ""
    return datetime.datetime.fromtimestamp(summary.started_at, datetime.timezone.utc).isoformat(timespec="seconds")


def round_mean(summary: RunSummary, key: str) -> float | None:
    """A figure of the finished rounds' last epochs, averaged (a round's train loss, its digit accuracy)."""
    values = [float(r[key]) for r in summary.rounds if r.get("status") == "done" and isinstance(r.get(key), (int, float))]
    return sum(values) / len(values) if values else None


def _kept(summary: RunSummary) -> str:
    """The rounds whose weights the record keeps ('unreadable' where its weights file cannot be read)."""
    try:
        return " ".join(map(str, kept_rounds(summary.path)))
    except WeightsUnreadable:
        return "unreadable"


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

