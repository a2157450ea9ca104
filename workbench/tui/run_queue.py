"""The app's run queue as plain state: what waits, what trains, and what the bottom line says. No widgets, no
threads: the app asks it what to start and tells it what ended; tests drive it directly. How a group's runs are
cancelled is training.Group's rule."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.paper.config import RunConfig
from workbench.training.group import Group, NamedRun
from workbench.tui.text import markup


@dataclass
class QueueItem:
    id: int
    run: NamedRun

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def config(self) -> RunConfig:
        return self.run.config


class RunQueue:
    """What waits trains together when nothing trains: every waiting config starts as one group, handed to the
    engine at once (it stacks what shares an architecture and runs stacks side by side, as `table` does). A group
    ends when its last run ends; then the next group starts."""

    def __init__(self) -> None:
        self.waiting: list[QueueItem] = []
        self.running: list[QueueItem] = []  # the running group's runs that have not ended yet
        self.group = Group([])
        self.group_items: list[QueueItem] = []  # the running group's runs, in the group's order
        self.next_id = 1

    def add(self, run: NamedRun) -> QueueItem:
        item = QueueItem(self.next_id, run)
        self.next_id += 1
        self.waiting.append(item)
        return item

    def start_next(self) -> list[QueueItem]:
        """The group to train now, if nothing trains and something waits; it becomes the running group."""
        if self.running or not self.waiting:
            return []
        self.running, self.waiting = self.waiting, []
        self.group_items = list(self.running)
        self.group = Group([item.run for item in self.group_items])
        return list(self.running)

    @property
    def current(self) -> QueueItem | None:
        """The first run still training (None when nothing trains)."""
        return self.running[0] if self.running else None

    def finished(self, item_id: int) -> bool:
        """A run of the group ended; True when the whole group has."""
        self.running = [item for item in self.running if item.id != item_id]
        return not self.running

    def is_cancelled(self, item: QueueItem) -> bool:
        return item in self.group_items and self.group.is_cancelled(self.group_items.index(item))

    def cancel(self, item: QueueItem) -> None:
        """Cancels one run of the group; the others train on."""
        self.group.cancel(self.group_items.index(item))

    def cancel_all(self) -> None:
        self.group.cancel_all()

    def live(self) -> list[QueueItem]:
        """The running runs not cancelled."""
        return [item for item in self.running if not self.is_cancelled(item)]

    def clear(self) -> int:
        """Drops every waiting item; returns how many there were."""
        count = len(self.waiting)
        self.waiting.clear()
        return count

    @property
    def idle(self) -> bool:
        return not self.running and not self.waiting

    def status_line(self, shown: int = 4, sweep=None) -> str:
        """What the bottom line says: what trains, what waits, and a sweep that runs beside (its screen, or None)."""
        parts = []
        if self.running:
            names = ", ".join(markup(item.name) + (" (cancelling)" if self.is_cancelled(item) else "")
                              for item in self.running[:shown]) + ("…" if len(self.running) > shown else "")
            parts.append(f"[b]running{f' together ({len(self.running)})' if len(self.running) > 1 else ''}:[/b] "
                         f"{names}")
        if self.waiting:
            names = ", ".join(markup(item.name) for item in self.waiting[:shown]) + ("…" if len(self.waiting) > shown else "")
            parts.append(f"[b]queued ({len(self.waiting)}):[/b] {names}")
        if sweep is not None:  # a sweep trains too: the bottom line says so, never "queue empty"
            parts.append(f"[b]sweep {markup(sweep.study)} running[/b]"
                         + (f": {markup(sweep.progress)}" if sweep.progress else "") + " (f4)")
        return " · ".join(parts) if parts else "queue empty"
