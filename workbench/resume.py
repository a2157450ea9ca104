"""Runs that continue: a cancelled run to its planned epochs, a done run extended by more, a killed run from its
last checkpoint. Every random draw of an epoch comes from (seed, round, epoch), so a round continued from its
state after epoch k (engine/state.py) trains exactly as it would have without the stop.

On disk, beside a record: resume.npz, per round r "round<r>/epoch", "/steps", "/lr" and "round<r>/<part>/<param>"
for the weights and Adam's two moments (float32), and "history" (the epochs recorded so far); numpy's own format,
read without pickle. While a run trains, its claimed folder holds run.json (what the run is) and resume.npz as
of its last checkpoint, so that a killed process leaves a run that `digit-workbench resume` continues.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import RunConfig, from_dict

RESUME_FILE = "resume.npz"
RUN_FILE = "run.json"
PARTS = ("weights", "exp_avg", "exp_avg_sq")
RESUME_LIMIT = 3 * 2**31  # three copies of the largest weights file networks.py reads
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
    import io

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
    from .runs import HISTORY_FIELDS

    rows = [[math.nan if getattr(h, c) is None else float(getattr(h, c)) for c in HISTORY_FIELDS] for h in history]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(HISTORY_FIELDS))


def read_states(run_dir: Path, config: RunConfig) -> tuple[dict, list]:
    """Each kept round's RoundState, every part checked against the config's reference model, and the history
    as EpochRecords (run 0). ResumeUnreadable (one line) when it cannot be read."""
    from .engine.base import EpochRecord
    from .engine.state import RoundState
    from .fsutil import open_input
    from .models import build_model
    from .networks import NPY_HEADER, checked_arrays, rounds_named
    from .runs import HISTORY_FIELDS

    path = Path(run_dir) / RESUME_FILE
    if not path.exists():
        raise ResumeUnreadable(f"{run_dir}: no state to continue from was kept (kept when weights are: not with "
                               "--weights none, nor for a done run that kept less than every round)")
    shapes = {name: tuple(p.shape) for name, p in build_model(config).named_parameters()}
    try:
        with open_input(path, RESUME_LIMIT) as f, np.load(f, allow_pickle=False) as data:
            sizes = {name[:-4]: data.zip.getinfo(name).file_size for name in data.zip.namelist()}
            states = {}
            for r in rounds_named(data.zip.namelist()):
                if not 0 <= r < config.rounds:
                    raise ResumeUnreadable(f"{path}: round {r} is no round of this run ({config.rounds} rounds)")
                parts = {part: checked_arrays(data, path, f"round{r}/{part}", shapes, ResumeUnreadable)
                         for part in PARTS}
                epoch, steps, lr = (scalar(data, sizes.get(f"round{r}/{k}"), path, f"round{r}/{k}", NPY_HEADER)
                                    for k in ("epoch", "steps", "lr"))
                if epoch != int(epoch) or not 1 <= epoch <= 10**6 or steps < 1 or not lr > 0:
                    raise ResumeUnreadable(f"{path}: round {r} stands at epoch {epoch}, step {steps}, rate {lr}")
                states[r] = RoundState(int(epoch), steps, lr, **parts)
            history = data["history"] if "history" in sizes else None
    except ResumeUnreadable:
        raise
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise ResumeUnreadable(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    if history is None or history.ndim != 2 or history.shape[1] != len(HISTORY_FIELDS):
        raise ResumeUnreadable(f"{path}: its history is missing or not {len(HISTORY_FIELDS)} columns")
    records = [EpochRecord(0, int(row[0]), int(row[1]), *(None if math.isnan(v) else float(v) for v in row[2:6]),
                           float(row[6]), float(row[7])) for row in history]
    return states, records


def scalar(data, size: int | None, path: Path, key: str, most: int) -> float:
    """One number of the archive, at most `most` bytes as stored."""
    if size is None or size > most:
        raise ResumeUnreadable(f"{path}: {key} is missing or no number")
    value = data[key]
    if value.shape != () or value.dtype.kind not in "if" or not np.isfinite(value):
        raise ResumeUnreadable(f"{path}: {key} is {value.dtype} {value.shape}, not a finite number")
    return float(value)


def merged(result, prior: Continuation | None):
    """A continued run's result: the epochs recorded before, then the new ones, each round's figures those of
    its last recorded epoch (a round that was already at its last epoch trains no more)."""
    if prior is None:
        return result
    import dataclasses

    history = sorted([*prior.history, *result.history], key=lambda h: (h.epoch, h.round))
    last = {h.round: h for h in history}
    for r in result.rounds:
        h = last.get(r.round)
        if h is not None:
            r.epochs, r.train_loss, r.train_acc, r.test_acc, r.digit_acc = (
                h.epoch, h.train_loss, h.train_acc, h.test_acc, h.digit_acc)
    return dataclasses.replace(result, history=history, wall_time=result.wall_time + prior.wall_time)


# ------------------------------------------------------------------ while a run trains

def run_description(run, engine: str) -> dict:
    from .engine import resolve_device

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
        from .engine.state import Throttle

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
        from .fsutil import atomic_write_bytes

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
    import shutil

    from .fsutil import atomic_write_text
    from .runs import new_run_dir

    _, path = new_run_dir(root)
    try:
        atomic_write_text(path / RUN_FILE, json.dumps(run_description(run, engine), indent=2) + "\n")
    except BaseException:  # a full disk: no claim stays behind
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def described(folder: Path) -> tuple[dict, RunConfig]:
    """A killed run's run.json: what it was and its config (ResumeUnreadable when it cannot be read)."""
    from .config import ConfigError
    from .fsutil import read_input_text

    try:
        about = json.loads(read_input_text(folder / RUN_FILE))
        return about, from_dict(about["config"], str(folder / RUN_FILE))
    except (OSError, ValueError, KeyError, TypeError, RecursionError, ConfigError) as exc:
        raise ResumeUnreadable(f"{folder / RUN_FILE}: cannot be read ({exc})") from None


# ------------------------------------------------------------------ what `resume RUN` continues

def unfinished(root: Path, ref: str) -> list[Path]:
    """Folders under root without a summary that `ref` names (an id, or its start or end)."""
    if not Path(root).is_dir() or not ref:
        return []
    return [p for p in sorted(Path(root).iterdir()) if p.is_dir() and not (p / "summary.json").exists()
            and (p.name == ref or (len(ref) >= 4 and (p.name.startswith(ref) or p.name.endswith(ref))))]


def continuation_of(ref: str, root: Path, epochs: int | None = None):
    """(the NamedRun that continues what `ref` names, the engine it trained on, the digits it trained on or None
    where unknown). A killed run continues in its own folder; a cancelled record to its planned epochs (or
    `epochs`), as a run that replaces it; a done record only with more `epochs`, as a new run. LookupError or
    ResumeUnreadable (one line) when it cannot continue."""
    from .runs import writer_gone

    folders = unfinished(root, ref)
    if len(folders) > 1:
        raise LookupError(f"{ref!r} names {len(folders)} unfinished runs ({', '.join(p.name for p in folders[:3])}): "
                          "give more of it")
    if folders:
        folder = folders[0]
        if not writer_gone(folder):
            raise ResumeUnreadable(f"{folder.name} is still being trained by a running process")
        about, config = described(folder)
        same_device(config, str(about.get("device") or ""), about.get("name") or folder.name)
        config = with_epochs(config, epochs)
        states, history = read_states(folder, config)
        check_history(states, history, folder.name, config.epochs)
        spent = sum(max(h.seconds for h in history if h.epoch == e) for e in {h.epoch for h in history})
        prior = Continuation(states, history, about.get("continues") or "",
                             float(about.get("wall_time") or 0) + spent, folder)
        return named(about["name"], config, about.get("preset"), about.get("tags", []), about.get("note", ""),
                     about.get("weights"), prior), str(about.get("engine") or "batched"), None
    return of_record(ref, root, epochs)


def of_record(ref: str, root: Path, epochs: int | None):
    from .notebook import pick_runs
    from .runs import load_runs

    (summary,) = pick_runs([ref], load_runs(root)[0])
    if summary.status == "failed":
        raise ResumeUnreadable(f"{summary.name} ({summary.id}) failed ({summary.reason or 'no reason kept'}): a "
                               "failed run does not continue; train it again")
    if summary.status == "done" and (epochs is None or epochs <= summary.config.epochs):
        raise ResumeUnreadable(f"{summary.name} ({summary.id}) is done at its {summary.config.epochs} epochs: "
                               f"--epochs N (more than {summary.config.epochs}) extends it as a new run")
    same_device(summary.config, summary.device, f"{summary.name} ({summary.id})")
    config = with_epochs(summary.config, epochs)
    states, history = read_states(summary.path, summary.config)
    check_history(states, history, summary.id, config.epochs)
    prior = Continuation(states, history, summary.id, summary.wall_time,
                         supersedes=summary.path if summary.status == "cancelled" else None)
    name = summary.name
    if summary.status == "done":  # a new run: named by what differs from its preset, or after the one it extends
        extended = named(None, config, summary.preset, summary.tags, summary.note, None, prior)
        default = named(None, summary.config, summary.preset, (), "", None, None).name
        name = extended.name if summary.name == default else f"{summary.name} epochs {config.epochs}"
    return (named(name, config, summary.preset, summary.tags, summary.note, None, prior), summary.engine or "batched",
            summary.data_source)


def named(name, config: RunConfig, preset_name, tags, note: str, weights, prior):
    from .presets import load_presets
    from .training import NamedRun

    try:
        preset = load_presets().get(preset_name or "")
    except Exception:  # a broken presets folder costs the paper's score, not the run
        preset = None
    run = NamedRun.of(config, preset, name, tuple(tags), note, weights)
    run.resume = prior
    if preset is None and preset_name:
        run.preset = preset_name
    return run


def same_device(config: RunConfig, used: str, what: str) -> None:
    """A run continues on the kind of device it trained on: a GPU's numbers are not a CPU's. Its weights reopen
    anywhere (networks.load_network); its training goes on only where it was."""
    from .engine import EngineError, resolve_device

    try:
        here = resolve_device(config.device).type
    except EngineError as exc:
        raise ResumeUnreadable(f"{what}: {exc}") from None
    if used and used.split()[0] != here:
        raise ResumeUnreadable(f"{what} trained on {used}; here it would train on {here}, and a device's numbers "
                               "are its own: resume it on the device it used")


def with_epochs(config: RunConfig, epochs: int | None) -> RunConfig:
    import dataclasses

    if epochs is None:
        return config
    if not 1 <= epochs <= 10_000:
        raise ResumeUnreadable(f"--epochs: a whole number from 1 to 10000, got {epochs}")
    return dataclasses.replace(config, epochs=epochs)


def check_history(states: dict, history: list, what: str, epochs: int) -> None:
    """Each round's state stands where its recorded epochs end (a state and a history that disagree are no run),
    and no later than the epochs it is to train to."""
    for r, state in states.items():
        if state.epoch > epochs:
            raise ResumeUnreadable(f"--epochs: round {r} of {what} has trained {state.epoch} epochs already, more "
                                   f"than {epochs}")
        last = max((h.epoch for h in history if h.round == r), default=0)
        if last != state.epoch:
            raise ResumeUnreadable(f"{what}: round {r}'s state is after epoch {state.epoch}, its history ends at "
                                   f"epoch {last}")
