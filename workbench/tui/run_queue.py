"""The app's run queue as plain state: what waits, what trains, and what the bottom line says. No widgets, no
threads: the app asks it what to start and tells it what ended; tests drive it directly."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..config import Preset, RunConfig


@dataclass
class QueueItem:
    id: int
    name: str
    config: RunConfig
    preset: Preset | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


class RunQueue:
    """Runs train one at a time, in the order queued."""

    def __init__(self) -> None:
        self.waiting: list[QueueItem] = []
        self.current: QueueItem | None = None
        self.next_id = 1

    def add(self, name: str, config: RunConfig, preset: Preset | None = None) -> QueueItem:
        item = QueueItem(self.next_id, name, config, preset)
        self.next_id += 1
        self.waiting.append(item)
        return item

    def start_next(self) -> QueueItem | None:
        """The item to train now, if nothing trains and something waits; it becomes current."""
        if self.current is not None or not self.waiting:
            return None
        self.current = self.waiting.pop(0)
        return self.current

    def is_current(self, item_id: int) -> bool:
        return self.current is not None and self.current.id == item_id

    def finished(self) -> None:
        self.current = None

    def cancel_current(self) -> QueueItem | None:
        """Asks the current run to stop (it is kept, as cancelled); returns it, or None when nothing trains."""
        if self.current is not None:
            self.current.cancel.set()
        return self.current

    def clear(self) -> int:
        """Drops every waiting item; returns how many there were."""
        count = len(self.waiting)
        self.waiting.clear()
        return count

    @property
    def idle(self) -> bool:
        return self.current is None and not self.waiting

    def status_line(self, shown: int = 4) -> str:
        parts = []
        if self.current is not None:
            parts.append(f"[b]running:[/b] {self.current.name}")
        if self.waiting:
            names = ", ".join(item.name for item in self.waiting[:shown]) + ("…" if len(self.waiting) > shown else "")
            parts.append(f"[b]queued ({len(self.waiting)}):[/b] {names}")
        return " · ".join(parts) if parts else "queue empty"
