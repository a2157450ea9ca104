"""The weights a record keeps: runs/<id>/weights.npz holds, per kept round r, every parameter of the reference
model (paper/models.py) as "round<r>/<parameter name>" in float32: numpy's own format, read without pickle, by any
numpy. Which rounds are kept, the archive written, and read back checked against the reference model (the same
check reads resume.npz). analysis/networks.py turns them back into a torch module.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from workbench.fsutil import open_input
from workbench.paper.architecture import weight_count
from workbench.records.layout import WEIGHTS_FILE

KEEP = ("all", "first", "none")
SMALL_BYTES = 50 * 2**20  # kept for every round up to this size (the largest preset, table4-cnn-best: 37.8 MB)
WEIGHTS_LIMIT = 2**31  # a weights file past this is no record of these networks (4096-wide layers stay under it)
ZIP_MAGIC = b"PK\x03\x04"  # how every .npz begins (numpy would take anything else for a pickle)


class WeightsUnreadable(Exception):
    """A run's weights cannot be used: none kept, a file cut short or foreign, a round not kept; one line."""


def weights_bytes(config) -> int:
    return 4 * weight_count(config)


def resolve_keep(config, keep: str | None) -> tuple[str, str]:
    """Which rounds a run keeps (all, first or none) and, where the default chose less than every round, why.
    The default keeps every round while the file stays under SMALL_BYTES, else the first round."""
    if keep is not None:
        if keep not in KEEP:
            raise ValueError(f"weights: one of {', '.join(KEEP)}, got {keep!r}")
        return keep, ""
    total = weights_bytes(config) * config.rounds
    if total <= SMALL_BYTES:
        return "all", ""
    return "first", (f"weights kept for round 0 only: {config.rounds} rounds would take {total / 2**20:.0f} MB "
                     "(--weights all keeps them all)")


def weights_npz(rounds, keep: str) -> bytes | None:
    """The finished rounds' weights as one numpy archive (None when none is kept)."""
    kept = [r for r in rounds if r.weights is not None]
    if keep == "none" or not kept:
        return None
    if keep == "first":
        kept = kept[:1]
    buffer = io.BytesIO()
    np.savez(buffer, **{f"round{r.round}/{name}": array for r in kept for name, array in r.weights.items()})
    return buffer.getvalue()


def kept_rounds(run_dir: Path | None) -> list[int]:
    """The rounds whose weights a record keeps, from the archive's index alone: [] when it keeps none;
    WeightsUnreadable (one line) when a weights file is there but is no archive (cut short, a folder, a FIFO)."""
    path = Path(run_dir) / WEIGHTS_FILE if run_dir is not None else None
    if path is None or not os.path.lexists(path):
        return []
    with open_archive(path, WEIGHTS_LIMIT) as data:
        return rounds_named(data.zip.namelist())


def rounds_named(names) -> list[int]:
    """The rounds an archive's members name ("round<r>/…"), in order."""
    rounds = {name.split("/", 1)[0] for name in names if name.startswith("round") and "/" in name}
    return sorted(int(r[5:]) for r in rounds if r[5:].isdigit())


def member(data, key: str, path: Path, most_bytes: int, error=WeightsUnreadable) -> np.ndarray:
    """One array of an open archive, read only once its header says it is plain numbers of at most `most_bytes`
    (a header may claim terabytes in a file of a few bytes); `error` (one line) otherwise."""
    if f"{key}.npy" not in data.zip.namelist():
        raise error(f"{path}: {key} is missing")
    shape, dtype = member_header(data, key, path, error)
    if dtype.hasobject or dtype.kind not in "biufc":
        raise error(f"{path}: {key} holds {dtype}, not numbers")
    if math.prod(shape) * dtype.itemsize > most_bytes:
        raise error(f"{path}: {key} claims {dtype} {shape}, more than {most_bytes:,} bytes such a part may hold")
    return data[key]


def member_header(data, key: str, path: Path, error=WeightsUnreadable) -> tuple[tuple, np.dtype]:
    """A member's shape and dtype, from its .npy header alone."""
    try:
        with data.zip.open(f"{key}.npy") as f:
            version = npy_format.read_magic(f)
            read = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}.get(version)
            if read is None:
                raise ValueError(f".npy version {version}")
            shape, _, dtype = read(f)
    except Exception as exc:  # numpy parses the header as Python literals: tokenize and ast raise their own kinds
        raise error(f"{path}: {key} has no readable array header ({type(exc).__name__})") from None
    return tuple(shape), dtype


def checked_arrays(data, path: Path, prefix: str, shapes: dict[str, tuple], error=WeightsUnreadable
                   ) -> dict[str, np.ndarray]:
    """Every parameter of the network under `prefix/` in an open archive, each checked before it is read (its
    header: float32 of the network's shape) and after (finite); `error` (one line) for the first that is not."""
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        key = f"{prefix}/{name}"
        if f"{key}.npy" not in data.zip.namelist():
            raise error(f"{path}: {key} is missing: not this run's network")
        stored, dtype = member_header(data, key, path, error)
        if stored != shape or dtype != np.float32:
            raise error(f"{path}: {key} is {dtype} {stored}, not the network's float32 {shape}")
        array = data[key]
        if array.shape != shape or array.dtype != np.float32 or not np.isfinite(array).all():
            raise error(f"{path}: {key} is not finite float32 {shape}")
        out[name] = array
    return out


def reference_shapes(config) -> dict[str, tuple]:
    """Every parameter's shape in the config's reference model: what a kept network must match."""
    from workbench.paper.models import build_model

    return {name: tuple(p.shape) for name, p in build_model(config).named_parameters()}


@contextmanager
def open_archive(path: Path, limit: int, error=WeightsUnreadable):
    """A numpy archive of a record (weights.npz, resume.npz, predictions.npz), read without pickle and only as a
    regular file of at most `limit` bytes that starts as a zip archive; whatever goes wrong reading it is `error`,
    one line naming the file."""
    try:
        with open_input(path, limit) as f:
            if f.read(4) != ZIP_MAGIC:
                raise error(f"{path}: not a numpy archive (.npz): it is cut short, or some other file")
            f.seek(0)
            with np.load(f, allow_pickle=False) as data:
                yield data
    except error:
        raise
    except MemoryError:
        raise error(f"{path}: holds more than this machine's memory: no record of these networks") from None
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise error(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None


def read_weights(run_dir: Path, config, round_index: int) -> dict[str, np.ndarray]:
    """Round `round_index`'s parameters, each checked against the shape the config's reference model has."""
    path = Path(run_dir) / WEIGHTS_FILE
    if not os.path.lexists(path):  # a link to nowhere, or a loop, is read (and refused) below
        raise WeightsUnreadable(f"{run_dir}: no weights kept (trained before weights were kept, with "
                                "--weights none, or not finished)")
    shapes = reference_shapes(config)
    with open_archive(path, WEIGHTS_LIMIT) as data:
        kept = rounds_named(data.zip.namelist())
        if round_index not in kept:
            raise WeightsUnreadable(f"{path}: round {round_index} is not kept (kept: "
                                    f"{', '.join(map(str, kept)) or 'none'})")
        return checked_arrays(data, path, f"round{round_index}", shapes)


