"""Runs as TensorBoard event files, for users who keep their experiments there (`export --tensorboard DIR`).

One folder per run (TensorBoard's "run"), one event file in it: per epoch the mean over rounds and every round's
value of the test accuracy, training loss and accuracy and, with the auxiliary loss, the digit accuracy; the final
score (mean and std over rounds); and the run's report figure as an image. Written without TensorBoard itself:
the event-file format is a few lines of protocol-buffer encoding, and TensorBoard's own reader checks it (tests).
"""

from __future__ import annotations

import re
import socket
import struct
import time
from pathlib import Path

from workbench.analysis.curves import Curves
from workbench.analysis.figures import report_png
from workbench.fsutil import atomic_write_bytes
from workbench.records.store import RunSummary, readable_history

SERIES = {"test_acc": "test accuracy", "train_loss": "train loss", "train_acc": "train accuracy",
          "digit_acc": "digit accuracy"}


# ------------------------------------------------------------------ the record format: CRC-32C and protobuf

def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C, rotated and offset so that a CRC of CRCs does not collide."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One TFRecord: length, its checksum, the data, its checksum."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_bytes(number: int, data: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def event(wall_time: float, step: int = 0, summary: bytes | None = None, file_version: str | None = None) -> bytes:
    """tensorflow.Event: wall_time (1, double), step (2, int64), file_version (3) or summary (5)."""
    out = varint(1 << 3 | 1) + struct.pack("<d", wall_time) + field_int(2, step)
    if file_version is not None:
        out += field_bytes(3, file_version.encode())
    if summary is not None:
        out += field_bytes(5, summary)
    return out


def scalar(tag: str, value: float) -> bytes:
    """tensorflow.Summary with one Value: tag (1) and simple_value (2, float)."""
    value_message = field_bytes(1, tag.encode()) + varint(2 << 3 | 5) + struct.pack("<f", value)
    return field_bytes(1, value_message)


def image(tag: str, png: bytes, height: int, width: int) -> bytes:
    """tensorflow.Summary with one Value: tag (1) and image (4: height, width, colorspace RGBA, PNG bytes)."""
    picture = field_int(1, height) + field_int(2, width) + field_int(3, 4) + field_bytes(4, png)
    return field_bytes(1, field_bytes(1, tag.encode()) + field_bytes(4, picture))


# ------------------------------------------------------------------ runs as event files

def run_folder(summary: RunSummary) -> str:
    """A run's folder name: its name as letters, digits and . _ - (TensorBoard lists runs by folder), then the end
    of its id, so two runs of one name stay apart."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", summary.name).strip("._")[:60] or "run"
    return f"{slug}-{summary.id[-6:]}"


def run_events(summary: RunSummary, figure_png: tuple[bytes, int, int] | None = None) -> bytes:
    """The event file of one run: what its history holds, its final score, and its figure."""
    now = summary.saved_at or summary.started_at or time.time()
    out = [record(event(now, file_version="brain.Event:2"))]
    curves = Curves.of(readable_history(summary))
    for column, which, epoch, value in curves.points():
        name = f"{which} over rounds" if isinstance(which, str) else f"round {which}"
        out.append(record(event(now, epoch, scalar(f"{SERIES[column]}/{name}", value))))
    last = max((e for by_epoch in curves.test_acc.values() for e in by_epoch), default=0)
    if summary.mean is not None:
        out.append(record(event(now, last, scalar("final/test accuracy mean", summary.mean))))
    if summary.std is not None:
        out.append(record(event(now, last, scalar("final/test accuracy std", summary.std))))
    if figure_png is not None:
        out.append(record(event(now, last, image("figures/curves, rounds and errors", *figure_png))))
    return b"".join(out)


def export_tensorboard(summaries: list[RunSummary], out: Path, figures: bool = True) -> list[Path]:
    """One event file per run under out/<run folder>/, each written whole; returns their paths."""
    written = []
    stamp = int(time.time())
    for summary in summaries:
        path = Path(out) / run_folder(summary) / f"events.out.tfevents.{stamp}.{socket.gethostname()}.digit-workbench"
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("events.out.tfevents.*.digit-workbench"):  # an export again replaces it
            old.unlink()
        atomic_write_bytes(path, run_events(summary, report_png(summary) if figures else None))
        written.append(path)
    return written
