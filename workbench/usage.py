"""What the commands share: a bad flag or value (one line naming it, exit status 2), flags, the digits flags."""

from __future__ import annotations


class UsageError(Exception):
    pass


def flag(key: str) -> str:
    """The command-line flag of a config field: batch_size -> --batch-size."""
    return "--" + key.replace("_", "-")


def load_digits(data: str | None, data_dir: str | None):
    """The digits that --data and --data-dir name; a UsageError naming --data when they cannot be had."""
    from .data import load_source
    from .sources import DataError, source_kind

    try:
        return load_source(source_kind(data, data_dir), data_dir)
    except DataError as exc:
        raise UsageError(f"--data: {exc}") from None
