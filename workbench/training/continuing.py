"""Runs that continue: a cancelled run to its planned epochs, a done run extended by more, a killed run from its
last checkpoint (records/checkpoint.py keeps and reads the states). A run continues on the device kind it
trained on, and trains to the numbers it would have reached without the stop.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from workbench.paper.config import RunConfig
from workbench.paper.presets import load_presets
from workbench.records.checkpoint import Continuation, ResumeUnreadable, described, read_states
from workbench.records.folder import FolderBusy, hold, unfinished, writer_gone
from workbench.records.layout import RESUME_FILE
from workbench.records.notebook import pick_runs
from workbench.records.store import load_runs
from workbench.training.group import NamedRun


def merged(result, prior: Continuation | None):
    """A continued run's result: the epochs recorded before, then the new ones, each round's figures those of
    its last recorded epoch (a round that was already at its last epoch trains no more)."""
    if prior is None:
        return result

    history = sorted([*prior.history, *result.history], key=lambda h: (h.epoch, h.round))
    last = {h.round: h for h in history}
    for r in result.rounds:
        h = last.get(r.round)
        if h is not None:
            r.epochs, r.train_loss, r.train_acc, r.test_acc, r.digit_acc = (
                h.epoch, h.train_loss, h.train_acc, h.test_acc, h.digit_acc)
    return dataclasses.replace(result, history=history, wall_time=result.wall_time + prior.wall_time)


# ------------------------------------------------------------------ while a run trains

def continuation_of(ref: str, root: Path, epochs: int | None = None):
    """(the NamedRun that continues what `ref` names, the engine it trained on, the digits it trained on or None
    where unknown). A killed run continues in its own folder; a cancelled record to its planned epochs (or
    `epochs`), as a run that replaces it; a done record only with more `epochs`, as a new run. LookupError or
    ResumeUnreadable (one line) when it cannot continue."""
    folders = unfinished(root, ref)
    if len(folders) > 1:
        raise LookupError(f"{ref!r} names {len(folders)} unfinished runs ({', '.join(p.name for p in folders[:3])}): "
                          "give more of it")
    if folders:
        folder = folders[0]
        if not writer_gone(folder):
            raise ResumeUnreadable(f"{folder.name} is still being trained by a running process")
        if not os.path.lexists(folder / RESUME_FILE):
            raise ResumeUnreadable(f"{folder.name} was interrupted before its first checkpoint: nothing it computed "
                                   "was kept, so it cannot continue; train it again")
        held(folder)
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


def held(folder: Path) -> None:
    try:
        hold(folder)
    except FolderBusy as exc:
        raise ResumeUnreadable(str(exc)) from None


def of_record(ref: str, root: Path, epochs: int | None):
    (summary,) = pick_runs([ref], load_runs(root)[0])
    if summary.status == "failed":
        raise ResumeUnreadable(f"{summary.name} ({summary.id}) failed ({summary.reason or 'no reason kept'}): a "
                               "failed run does not continue; train it again")
    if summary.status == "done" and (epochs is None or epochs <= summary.config.epochs):
        raise ResumeUnreadable(f"{summary.name} ({summary.id}) is done at its {summary.config.epochs} epochs: "
                               f"--epochs N (more than {summary.config.epochs}) extends it as a new run")
    same_device(summary.config, summary.device, f"{summary.name} ({summary.id})")
    held(summary.path)
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
    from workbench.engine import EngineError, resolve_device

    try:
        here = resolve_device(config.device).type
    except EngineError as exc:
        raise ResumeUnreadable(f"{what}: {exc}") from None
    if used and used.split()[0] != here:
        raise ResumeUnreadable(f"{what} trained on {used}; here it would train on {here}, and a device's numbers "
                               "are its own: resume it on the device it used")


def with_epochs(config: RunConfig, epochs: int | None) -> RunConfig:
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
