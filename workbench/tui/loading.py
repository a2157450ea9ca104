"""What the app loads off the UI thread: torch and the digits once, and the run records other processes write."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Callable

from workbench.records.layout import is_run
from workbench.records.store import load_runs
from workbench.training.train import most_pairs
from workbench.tui.messages import DigitsFailed, DigitsReady, RunsFound, RunsGone


class Digits:
    """The digit source, loaded once (it imports torch: never on the UI thread)."""

    def __init__(self) -> None:
        self.source = None
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            if self.source is None:
                from workbench.paper.data import load_source

                self.source = load_source("auto")
            return self.source

    def prepare(self, post: Callable) -> None:
        """Loads the digits, torch and scipy, then says what the devices are; a failure is a message."""
        try:
            source = self()
            import torch

            from workbench.engine import cuda_unavailable_reason

            importlib.import_module("scipy.stats")  # the compare screen's tests: a second to import, done here
            available = torch.cuda.is_available()
            post(DigitsReady(source.name, available, "" if available else cuda_unavailable_reason(),
                             most_pairs(source)))
        except Exception as exc:  # missing package, damaged file: say so, keep the app
            post(DigitsFailed(f"{type(exc).__name__}: {exc}"))


class RunsWatcher:
    """The runs folder as the results table knows it: each look reads only the folders it has not seen."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.unreadable: set[str] = set()  # told once, not at every look

    def look(self, known: dict, post: Callable) -> None:
        """New records are posted as RunsFound; records of the table that left the folder (`runs rm` from the
        command line, a move by hand) as RunsGone."""
        summaries, problems = load_runs(self.root, skip=set(known) | self.unreadable)
        self.unreadable.update(problem.run_id for problem in problems)
        if summaries or problems:
            post(RunsFound(summaries, problems))
        gone = [run_id for run_id, s in known.items()
                if s.path is not None and s.path.parent == self.root and not is_run(s.path)]
        if gone:
            post(RunsGone(gone))
