"""A run's trained networks: the weights its record keeps, and the one way back to a torch module.

runs/<id>/weights.npz holds, per kept round r, every parameter of the reference model (models.py) as
"round<r>/<parameter name>" in float32: numpy's own format, read without pickle, by any numpy. `load_network`
gives a round back as the reference `nn.Module`, on any device, in eval mode:

    from workbench.networks import load_network
    net = load_network("20261202-101500-3fa2c1", round_index=0)   # a record's id, folder or RunSummary
    logit, digits = net(pairs)                                     # pairs: (N, 2, 14, 14), pixels 0..255 pooled
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from .architecture import weight_count

WEIGHTS_FILE = "weights.npz"
KEEP = ("all", "first", "none")
SMALL_BYTES = 50 * 2**20  # kept for every round up to this size (the largest preset, table4-cnn-best: 37.8 MB)
WEIGHTS_LIMIT = 2**31  # a weights file past this is no record of these networks (4096-wide layers stay under it)
NPY_HEADER = 1024  # what numpy's header may add to a member beyond its data


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
    """The rounds whose weights a record keeps ([] when it keeps none), from the archive's index alone."""
    path = Path(run_dir) / WEIGHTS_FILE if run_dir is not None else None
    if path is None or not path.is_file():
        return []
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return []
    return rounds_named(names)


def rounds_named(names) -> list[int]:
    """The rounds an archive's members name ("round<r>/…"), in order."""
    rounds = {name.split("/", 1)[0] for name in names if name.startswith("round") and "/" in name}
    return sorted(int(r[5:]) for r in rounds if r[5:].isdigit())


def checked_arrays(data, path: Path, prefix: str, shapes: dict[str, tuple], error=WeightsUnreadable
                   ) -> dict[str, np.ndarray]:
    """Every parameter of the network under `prefix/` in an open archive, each checked before it is read (its
    size) and after (finite float32 of the network's shape); `error` (one line) for the first that is not."""
    sizes = {name[:-4]: data.zip.getinfo(name).file_size for name in data.zip.namelist()}
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        key = f"{prefix}/{name}"
        if key not in sizes:
            raise error(f"{path}: {key} is missing: not this run's network")
        if sizes[key] > 4 * int(np.prod(shape)) + NPY_HEADER:
            raise error(f"{path}: {key} is larger than the network's {shape}")
        array = data[key]
        if array.shape != shape or array.dtype != np.float32 or not np.isfinite(array).all():
            raise error(f"{path}: {key} is {array.dtype} {array.shape}, not finite float32 {shape}")
        out[name] = array
    return out


def read_weights(run_dir: Path, config, round_index: int) -> dict[str, np.ndarray]:
    """Round `round_index`'s parameters, each checked against the shape the config's reference model has."""
    from .fsutil import open_input
    from .models import build_model

    path = Path(run_dir) / WEIGHTS_FILE
    if not path.exists():
        raise WeightsUnreadable(f"{run_dir}: no weights kept (trained before weights were kept, with "
                                "--weights none, or not finished)")
    shapes = {name: tuple(p.shape) for name, p in build_model(config).named_parameters()}
    try:
        with open_input(path, WEIGHTS_LIMIT) as f, np.load(f, allow_pickle=False) as data:
            kept = rounds_named(data.zip.namelist())
            if round_index not in kept:
                raise WeightsUnreadable(f"{path}: round {round_index} is not kept (kept: "
                                        f"{', '.join(map(str, kept)) or 'none'})")
            return checked_arrays(data, path, f"round{round_index}", shapes)
    except WeightsUnreadable:
        raise
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise WeightsUnreadable(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None


def record_of(run):
    """A RunSummary from a summary, a record's folder, or an id (or its start or end) under the runs directory."""
    import json

    from .fsutil import read_input_text
    from .notebook import pick_runs
    from .runs import RunSummary, load_runs, runs_dir

    if isinstance(run, RunSummary):
        return run
    path = Path(run)
    if path.is_dir():
        try:
            return RunSummary.from_dict(json.loads(read_input_text(path / "summary.json")), path)
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise WeightsUnreadable(f"{path / 'summary.json'}: cannot be read ({exc})") from None

    try:
        (summary,) = pick_runs([str(run)], load_runs(runs_dir())[0])
    except LookupError as exc:
        raise WeightsUnreadable(str(exc)) from None
    return summary


def load_network(run, round_index: int = 0, device="cpu"):
    """Round `round_index` of a run as the reference model of models.py, its weights loaded, on `device`, in eval
    mode. `run`: a RunSummary, a record's folder, or a run id. WeightsUnreadable (one line) when it cannot be."""
    from .engine.state import load_weights
    from .models import build_model

    summary = record_of(run)
    if summary.path is None:
        raise WeightsUnreadable(f"{summary.name}: not saved, so no weights were kept")
    weights = read_weights(summary.path, summary.config, round_index)
    return load_weights(build_model(summary.config), weights).to(device).eval()


FIRST_LAYERS = {"basic": ["body.1.weight"], "fcn": ["left.body.1.weight", "right.body.1.weight"],
                "cnn": ["left.features.0.weight", "right.features.0.weight"]}


def first_layer(summary, round_index: int = 0, change: bool = False) -> list[tuple[str, np.ndarray]]:
    """What the first layer of a round's network looks at, as pictures (n, h, w) per side: the FCN's units as
    14x14 images, the CNN's filters as K x K, the basic net's units as 14x28 (both digits side by side). One
    side with weight sharing (both subnets are one), left and right without. With `change`, what training
    changed: the weights less their initial values (the round's initialisation is drawn again from its seed)."""
    weights = read_weights(summary.path, summary.config, round_index)
    if change:
        from .randomness import init_model

        initial = {name: p.detach().numpy() for name, p in init_model(summary.config, round_index).named_parameters()}
        weights = {name: w - initial[name] for name, w in weights.items()}
    sides = []
    for name in FIRST_LAYERS[summary.config.subnet]:
        if name not in weights:  # the right subnet's, under weight sharing: it is the left one
            continue
        w = weights[name]
        if summary.config.subnet == "fcn":
            pictures = w.reshape(-1, 14, 14)
        elif summary.config.subnet == "cnn":
            pictures = w[:, 0]
        else:  # the first 196 inputs are the first digit, the next 196 the second
            pictures = np.concatenate([w[:, :196].reshape(-1, 14, 14), w[:, 196:].reshape(-1, 14, 14)], axis=2)
        label = "both subnets (shared)" if summary.config.weight_sharing and name.startswith("left") else (
            f"{name.split('.')[0]} subnet" if name.startswith(("left", "right")) else "the pair")
        sides.append((label, pictures))
    return sides
