"""The app's training thread: hands a queue group to training.train_and_record and reports only through messages
(a few a second at most); naming, cancelling, saving and scoring are training/train.py's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from workbench.training.train import train_and_record
from workbench.tui.messages import RunFinished, RunProgress
from workbench.tui.run_queue import QueueItem, RunQueue

PROGRESS_EVERY_S = 0.2  # epoch records are batched into a message at most this often


class ProgressBatcher:
    """Collects a group's epoch records per queue item and posts them as RunProgress messages."""

    def __init__(self, items: list[QueueItem], post: Callable) -> None:
        self.items, self.post = items, post
        self.pending: dict[int, list] = {item.id: [] for item in items}
        self.last_post = 0.0

    def add(self, rec) -> None:
        self.pending[self.items[rec.run].id].append(rec)
        now = time.monotonic()
        if now - self.last_post >= PROGRESS_EVERY_S:
            self.last_post = now
            self.flush()

    def flush(self) -> None:
        for item_id, records in self.pending.items():
            if records:
                self.post(RunProgress(item_id, records[:]))
                records.clear()


def train_queue_group(queue: RunQueue, load_digits: Callable, engine: str, runs_root: Path, post: Callable) -> None:
    """Runs in a thread: trains the queue's running group in one engine call, records each run and posts
    RunFinished for each; never raises (a failure is a failed run)."""
    items = list(queue.group_items)
    progress = ProgressBatcher(items, post)
    recorded = train_and_record(queue.group, load_digits, engine=engine, runs_root=runs_root,
                                on_epoch=progress.add, refuse=False)
    progress.flush()
    for item, r in zip(items, recorded):
        post(RunFinished(item.id, r.summary, r.unsaved, r.tracked, r.sent, r.said, r.superseded))
