"""A run's trained networks reopened: the one way back to a torch module, and what its first layer looks at.
`load_network` gives a kept round back as the reference `nn.Module`, on any device, in eval mode:

    from workbench.analysis.networks import load_network
    net = load_network("20261202-101500-3fa2c1", round_index=0)   # a record's id, folder or RunSummary
    logit, digits = net(pairs)                                     # pairs: (N, 2, 14, 14), pixels 0..255 pooled
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.records.folder import runs_dir
from workbench.records.notebook import pick_runs
from workbench.records.store import RecordUnreadable, RunSummary, load_runs, read_record
from workbench.records.weights import WeightsUnreadable, read_weights


def record_of(run):
    """A RunSummary from a summary, a record's folder, or an id (or its start or end) under the runs directory."""
    if isinstance(run, RunSummary):
        return run
    path = Path(run)
    if path.is_dir():
        try:
            return read_record(path)
        except RecordUnreadable as exc:
            raise WeightsUnreadable(str(exc)) from None

    try:
        (summary,) = pick_runs([str(run)], load_runs(runs_dir())[0])
    except LookupError as exc:
        raise WeightsUnreadable(str(exc)) from None
    return summary


def load_network(run, round_index: int = 0, device="cpu"):
    """Round `round_index` of a run as the reference model of paper/models.py, its weights loaded, on `device`, in eval
    mode. `run`: a RunSummary, a record's folder, or a run id. WeightsUnreadable (one line) when it cannot be."""
    from workbench.engine import load_weights
    from workbench.paper.models import build_model

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
        from workbench.paper.randomness import init_model

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
