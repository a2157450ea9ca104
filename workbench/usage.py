"""What the commands share: a bad flag or value (one line naming it, exit status 2), flags, the digits flags."""

from __future__ import annotations

from contextlib import contextmanager


class UsageError(Exception):
    pass


def flag(key: str) -> str:
    """The command-line flag of a config field: batch_size -> --batch-size."""
    return "--" + key.replace("_", "-")


@contextmanager
def data_flag():
    """Digits that cannot be had become a UsageError naming --data."""
    from .sources import DataError

    try:
        yield
    except DataError as exc:
        raise UsageError(f"--data: {exc}") from None


def load_digits(data: str | None, data_dir: str | None):
    """The digits that --data and --data-dir name."""
    from .data import load_source
    from .sources import source_kind

    with data_flag():
        return load_source(source_kind(data, data_dir), data_dir)
