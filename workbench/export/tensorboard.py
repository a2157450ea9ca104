"""Runs as TensorBoard event files, for users who keep their experiments there (`export --tensorboard DIR`).

One folder per run (TensorBoard's "run"), one event file in it, written by tensorboardX: per epoch the mean over
rounds and every round's value of the test accuracy, training loss and accuracy and, with the auxiliary loss, the
digit accuracy; the final score (mean and std over rounds); every setting as HParams, so the HParams dashboard
lists each run beside its score; the config and where the run came from as text; and the run's report figure.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from workbench.analysis.curves import Curves
from workbench.analysis.figures import report_png
from workbench.fsutil import output_target
from workbench.records.store import RunSummary, readable_history

# TensorBoard's tag alphabet is letters, digits and - / _ . (tensorboardX rewrites anything else, and logs it)
SERIES = {"test_acc": "test_accuracy", "train_loss": "train_loss", "train_acc": "train_accuracy",
          "digit_acc": "digit_accuracy"}
FINAL_MEAN, FINAL_STD = "final/test_accuracy_mean", "final/test_accuracy_std"
FIGURE = "figures/curves_rounds_and_errors"
SUFFIX = ".digit-workbench"  # the end of the file names an export writes, and so may replace


def run_folder(summary: RunSummary) -> str:
    """A run's folder name: its name as letters, digits and . _ - (TensorBoard lists runs by folder), then the end
    of its id, so two runs of one name stay apart."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", summary.name).strip("._")[:60] or "run"
    return f"{slug}-{summary.id[-6:]}"


def hparams_of(summary: RunSummary) -> dict[str, bool | int | float | str]:
    """Every setting of the run (the HParams dashboard's columns), with the device it ran on."""
    settings = {key: value for key, value in summary.config.to_dict().items() if key != "device"}
    return {**settings, "device": summary.device or summary.config.device, "engine": summary.engine}


def record_text(summary: RunSummary) -> str:
    """The config and the run's provenance as Markdown TensorBoard's text view draws (a code block: plain text)."""
    record = {"name": summary.name, "id": summary.id, "preset": summary.preset, "status": summary.status,
              "tags": summary.tags, "note": summary.note, "config": summary.config.to_dict(),
              "where it ran": summary.versions, "cost": summary.cost, "digits": summary.data_source}
    return "\n".join("    " + line for line in json.dumps(record, indent=2, ensure_ascii=False).splitlines())


def figure_array(png: bytes):
    """The report figure as the pixel array tensorboardX encodes (it takes pixels, not a PNG)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as picture:
        return np.asarray(picture.convert("RGB"))


def write_run(summary: RunSummary, folder: Path, figure_png: bytes | None) -> None:
    """One run's events into folder, through tensorboardX's file writer; its close flushes them to disk."""
    from tensorboardX import summary as tb
    from tensorboardX.writer import FileWriter

    when = summary.saved_at or summary.started_at or None
    writer = FileWriter(str(folder), filename_suffix=SUFFIX)
    try:
        curves = Curves.of(readable_history(summary))
        for column, which, epoch, value in curves.points():
            name = f"{which}_over_rounds" if isinstance(which, str) else f"round_{which}"
            writer.add_summary(tb.scalar(f"{SERIES[column]}/{name}", value), epoch, when)
        last = max((e for by_epoch in curves.test_acc.values() for e in by_epoch), default=0)
        metrics = {tag: value for tag, value in ((FINAL_MEAN, summary.mean), (FINAL_STD, summary.std))
                   if value is not None}
        for tag, value in metrics.items():
            writer.add_summary(tb.scalar(tag, value), last, when)
        for part in tb.hparams(hparams_of(summary), metrics or {FINAL_MEAN: 0.0}):
            writer.add_summary(part, None, when)
        writer.add_summary(tb.text("record", record_text(summary)), 0, when)
        if figure_png is not None:
            writer.add_summary(tb.image(FIGURE, figure_array(figure_png), dataformats="HWC"), last, when)
    finally:
        writer.close()


def export_tensorboard(summaries: list[RunSummary], out: Path, figures: bool = True) -> list[Path]:
    """One event file per run under out/<run folder>/. Each is written in a scratch folder beside the runs and
    renamed into place, so a run's folder holds its whole file or its earlier one; an export again replaces it."""
    out = output_target(Path(out))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for summary in summaries:
        target = out / run_folder(summary)
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise OSError(f"{target} is not a folder the export made (a link or a file): left as it is")
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=out))
        try:
            png = report_png(summary) if figures else None
            write_run(summary, scratch, None if png is None else png[0])
            (made,) = scratch.iterdir()
            target.mkdir(exist_ok=True)
            olds = [p for p in target.glob(f"events.out.tfevents.*{SUFFIX}") if p.is_file() and not p.is_symlink()]
            os.replace(made, target / made.name)
            for old in olds:
                if old.name != made.name:
                    old.unlink()
            written.append(target / made.name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return written
