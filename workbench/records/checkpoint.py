"""What a run continues from, on disk: resume.npz beside a record, and run.json while it trains. Every random draw
of an epoch comes from (seed, round, epoch), so a round continued from its state after epoch k (engine/state.py)
trains exactly as it would have without the stop (training/continuing.py continues it).

resume.npz holds, per round r, "round<r>/epoch", "/steps", "/lr" and "round<r>/<part>/<param>" for the weights and
Adam's two moments (float32), and "history" (the epochs recorded so far); numpy's own format, read without pickle.
While a run trains, its claimed folder holds run.json (what the run is) and resume.npz as of its last checkpoint,
so that a killed process leaves a run that `digit-workbench resume` continues.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.fsutil import atomic_write_bytes, read_input_text
from workbench.paper.config import ConfigError, RunConfig, from_dict
from workbench.records.folder import new_run_dir
from workbench.records.layout import RESUME_FILE, RUN_FILE
from workbench.records.store import HISTORY_FIELDS
from workbench.records.weights import checked_arrays, member, open_archive, reference_shapes, rounds_named

PARTS = ("weights", "exp_avg", "exp_avg_sq")
RESUME_LIMIT = 3 * 2**31  # three copies of the largest weights file records/weights.py reads
CHECKPOINT_SHARE = 0.0025  # of the training time, at most, spent writing checkpoints (as much taking the states)


class ResumeUnreadable(Exception):
    """A run cannot continue: no state kept, a file cut short or foreign; one line."""


@dataclass
class Continuation:
    """Where a run continues from: each round's state (a round without one starts afresh), the epochs recorded
    before (EpochRecords of run 0), the record it continues, and the folder it finishes in (a killed run's own)."""

    states: dict
    history: list
    continues: str
    wall_time: float = 0.0
    folder: Path | None = field(default=None, repr=False)
    supersedes: Path | None = field(default=None, repr=False)  # a cancelled record it replaces once saved


def states_npz(states: dict, history) -> bytes:
    """Rounds' states (round -> RoundState) and the history so far as one archive."""
    arrays: dict[str, np.ndarray] = {"history": history_array(history)}
    for r, state in states.items():
        arrays[f"round{r}/epoch"] = np.array(state.epoch, dtype=np.int64)
        arrays[f"round{r}/steps"] = np.array(state.steps, dtype=np.float64)
        arrays[f"round{r}/lr"] = np.array(state.lr, dtype=np.float64)
        for part in PARTS:
            for name, array in getattr(state, part).items():
                arrays[f"round{r}/{part}/{name}"] = array
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def history_array(history) -> np.ndarray:
    """The epoch records as rows of history.csv's columns (runs.HISTORY_FIELDS), NaN for a missing figure."""
    rows = [[math.nan if getattr(h, c) is None else float(getattr(h, c)) for c in HISTORY_FIELDS] for h in history]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(HISTORY_FIELDS))


def read_states(run_dir: Path, config: RunConfig) -> tuple[dict, list]:
    """Each kept round's RoundState, every part checked against the config's reference model, and the history
    as EpochRecords (run 0). ResumeUnreadable (one line) when it cannot be read."""
    from workbench.engine import EpochRecord, RoundState

    path = Path(run_dir) / RESUME_FILE
    if not os.path.lexists(path):
        raise ResumeUnreadable(f"{run_dir}: no state to continue from was kept (kept when weights are: not with "
                               "--weights none, nor for a done run that kept less than every round)")
    shapes = reference_shapes(config)
    with open_archive(path, RESUME_LIMIT, ResumeUnreadable) as data:
        states = {}
        for r in rounds_named(data.zip.namelist()):
            if not 0 <= r < config.rounds:
                raise ResumeUnreadable(f"{path}: round {r} is no round of this run ({config.rounds} rounds)")
            parts = {part: checked_arrays(data, path, f"round{r}/{part}", shapes, ResumeUnreadable) for part in PARTS}
            epoch, steps, lr = (scalar(data, path, f"round{r}/{k}") for k in ("epoch", "steps", "lr"))
            if epoch != int(epoch) or not 1 <= epoch <= 10**6 or steps < 1 or not lr > 0:
                raise ResumeUnreadable(f"{path}: round {r} stands at epoch {epoch}, step {steps}, rate {lr}")
            states[r] = RoundState(int(epoch), steps, lr, **parts)
        rows = max(config.rounds * config.epochs + 1, 10_000)  # a bound, with room for records of older layouts
        history = member(data, "history", path, 8 * len(HISTORY_FIELDS) * rows, ResumeUnreadable)
    if history.ndim != 2 or history.shape[1] != len(HISTORY_FIELDS) or history.dtype != np.float64:
        raise ResumeUnreadable(f"{path}: its history is not {len(HISTORY_FIELDS)} columns of numbers")
    records = [EpochRecord(0, int(row[0]), int(row[1]), *(None if math.isnan(v) else float(v) for v in row[2:6]),
                           float(row[6]), float(row[7])) for row in history]
    return states, records


def scalar(data, path: Path, key: str) -> float:
    """One number of the archive."""
    value = member(data, key, path, 16, ResumeUnreadable)
    if value.shape != () or value.dtype.kind not in "if" or not np.isfinite(value):
        raise ResumeUnreadable(f"{path}: {key} is {value.dtype} {value.shape}, not a finite number")
    return float(value)


def run_description(run, engine: str) -> dict:
    from workbench.engine import resolve_device

    return {"name": run.name, "config": run.config.to_dict(), "device": resolve_device(run.config.device).type,
            "preset": run.preset, "edited": run.edited,
            "tags": list(run.tags), "note": run.note, "weights": run.weights, "engine": engine,
            "continues": run.resume.continues if run.resume else None,
            "wall_time": run.resume.wall_time if run.resume else 0.0}


class Checkpoints:
    """Each claimed run's state on disk as training goes (resume.npz in its folder), from the states the engine
    takes (engine/state.Taking: every few seconds, and after the last epoch) of epochs its group reported. Written
    whenever the time since the last write is at least 1/CHECKPOINT_SHARE times what that write cost. A run
    continues from its last state: the epochs after it are trained again, to the same numbers."""

    def __init__(self, group, folders: dict[int, Path]):
        from workbench.engine import Throttle

        self.group, self.folders = group, folders
        self.latest: dict[int, dict] = {i: dict(run.resume.states) if run.resume else {}
                                        for i, run in enumerate(group.runs)}
        self.changed: set[int] = set()
        self.writing = Throttle(CHECKPOINT_SHARE)
        self.failed: dict[int, str] = {}  # why a run's checkpoint could not be written: its record says so

    def reached(self, states) -> None:
        """The engine's callback: the states of one stack's epoch (or one round's, in the loop engine)."""
        for i, r, state in states:
            if self.group.was_reported(i, r, state.epoch):
                self.latest[i][r] = state
                self.changed.add(i)
        if self.folders and self.writing.due():
            self.writing.run(self.write_changed)

    def write_changed(self) -> None:
        for i in sorted(self.changed & self.folders.keys()):
            self.write(i)
        self.changed.clear()

    def history(self, i: int) -> list:
        """The epochs recorded up to where each round's state stands (a round without one starts afresh)."""
        run, states = self.group.runs[i], self.latest[i]
        return [h for h in [*(run.resume.history if run.resume else []), *self.group.reported[i]]
                if h.round in states and h.epoch <= states[h.round].epoch]

    def write(self, i: int) -> None:
        try:
            atomic_write_bytes(self.folders[i] / RESUME_FILE, states_npz(self.latest[i], self.history(i)))
        except OSError as exc:  # a full disk: training goes on, and the run's record says so at the end
            self.failed[i] = (f"{self.group.runs[i].name}: a checkpoint could not be written to {self.folders[i]} "
                              f"({exc.strerror or exc}); a killed run would have started again")

    def final(self, i: int, status: str, keep: str) -> bytes | None:
        """What the record keeps to continue from: a cancelled run's state when weights are kept, a done run's
        when every round's weights are."""
        keeps = {"cancelled": keep != "none", "done": keep == "all"}.get(status, False)
        return states_npz(self.latest[i], self.history(i)) if keeps and self.latest[i] else None


def claim(run, root: Path, engine: str) -> Path:
    """A run's folder, claimed before it trains and described (run.json), for its checkpoints."""
    return new_run_dir(root, run_description(run, engine))[1]


def described(folder: Path) -> tuple[dict, RunConfig]:
    """A killed run's run.json: what it was and its config (ResumeUnreadable when it cannot be read)."""
    try:
        about = json.loads(read_input_text(folder / RUN_FILE))
        return about, from_dict(about["config"], str(folder / RUN_FILE))
    except (OSError, ValueError, KeyError, TypeError, RecursionError, ConfigError) as exc:
        raise ResumeUnreadable(f"{folder / RUN_FILE}: cannot be read ({exc})") from None


# ------------------------------------------------------------------ what `resume RUN` continues

