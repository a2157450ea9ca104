"""Files that are either whole or absent: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from platformdirs import user_cache_path

TEXT_INPUT_LIMIT = 4 << 20  # a preset, a sweep spec or a run's summary is kilobytes: 4 MB is no such file


class InputRefused(OSError):
    """An input that is no regular file (a FIFO would hang a read, a device never ends) or is too large."""


def open_input(path: Path, limit: int | None = None):
    """A binary file object for an input, opened only when it is a regular file of at most `limit` bytes.
    Opening does not block (a FIFO with no writer answers at once) and the checks look at what was opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputRefused(errno.EINVAL, "not a regular file", str(path))
        if limit is not None and info.st_size > limit:
            raise InputRefused(errno.EFBIG, f"{info.st_size:,} bytes, more than the {limit:,} such a file may hold",
                               str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input(path: Path, limit: int | None = TEXT_INPUT_LIMIT) -> bytes:
    with open_input(path, limit) as f:
        return f.read() if limit is None else f.read(limit + 1)[:limit]


def read_input_text(path: Path, limit: int = TEXT_INPUT_LIMIT) -> str:
    """An input's text, UTF-8 (UnicodeDecodeError when it is not)."""
    return read_input(path, limit).decode("utf-8")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes data whole or not at all. A link is followed (the link stays, its target gets the data); a pipe or
    a character device (/dev/stdout, /dev/null) is written as a stream, never replaced; anything else that is
    not a regular file is refused."""
    path = output_target(Path(path))
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
            raise OSError(errno.EINVAL, "not a regular file, a pipe or a character device", str(path))
        with open(path, "wb") as stream:
            stream.write(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a record is as readable as any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def output_target(path: Path) -> Path:
    """Where an output lands: a link's target (never the link itself)."""
    if not path.is_symlink():
        return path
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # a loop of links
        raise OSError(errno.ELOOP, "a loop of links", str(path)) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def user_cache_dir() -> Path:
    """DIGIT_WORKBENCH_CACHE, else the platform's user cache directory."""
    if os.environ.get("DIGIT_WORKBENCH_CACHE"):
        return Path(os.environ["DIGIT_WORKBENCH_CACHE"]).expanduser()

    return user_cache_path("digit-workbench")
