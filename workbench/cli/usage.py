"""What the commands share: a bad flag or value (one line naming it, exit status 2), flags, the digits flags."""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from workbench.paper.config import DATA_SOURCES
from workbench.paper.sources import DataError, source_kind
from workbench.records.folder import runs_dir


class UsageError(Exception):
    pass


def flag(key: str) -> str:
    """The command-line flag of a config field: batch_size -> --batch-size."""
    return "--" + key.replace("_", "-")


@contextmanager
def data_flag(data_dir: str | None = None):
    """Digits that cannot be had become a UsageError naming the flag that asked for them: --data-dir when it was
    given, else --data."""
    try:
        yield
    except DataError as exc:
        raise UsageError(f"{'--data-dir' if data_dir else '--data'}: {exc}") from None


def load_digits(data: str | None, data_dir: str | None):
    """The digits that --data and --data-dir name."""
    from workbench.paper.data import load_source

    with data_flag(data_dir):
        return load_source(source_kind(data, data_dir), data_dir)


EXIT_USAGE = 2
DATA_DIR_HELP = "MNIST root (default: $PYTORCH_DATA_DIR or the user cache)"
RUNS_DIR_HELP = "the run records' folder (default: $DIGIT_WORKBENCH_RUNS, else ./runs)"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""  # the program's name is said once, before
        raise UsageError(f"{command}: {message}" if command else message)


def records_dir(value) -> Path:
    """The runs folder a command reads (--runs-dir, else the default), refused in one line when it is a file."""
    root = Path(value) if value else runs_dir()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--runs-dir: {root} is a file, not a folder of runs")
    return root


def add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", choices=DATA_SOURCES, default=None,
                   help="digit source: full MNIST when present (auto), or the embedded 5,000-digit subset")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)


