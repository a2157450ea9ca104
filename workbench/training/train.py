"""Train named configs and record them: the one path from a config to its run record. The CLI (`run`, `table`),
the app's queue and a sweep's final measurements all come through here, so a run is named, cancelled, saved
(or told why not) and scored against the paper the same way whoever asked for it.

Torch-free at import; the engine is imported when a group trains.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from workbench.export.mlflow_tracking import track as send
from workbench.export.mlflow_tracking import tracking_uri
from workbench.paper.config import RunConfig
from workbench.records.checkpoint import Checkpoints, claim
from workbench.records.folder import drop_unstarted
from workbench.records.provenance import cost_since, usage
from workbench.records.store import RunNotSaved, RunSummary, save_run, summarize
from workbench.records.trash import move_to_trash
from workbench.records.weights import resolve_keep
from workbench.training.continuing import merged
from workbench.training.group import Group, NamedRun


@dataclass
class Recorded:
    """A trained run, as recorded: its summary (with its record's id and path when saved), and why it is not on
    disk when it could not be saved ('' otherwise)."""

    run: NamedRun
    summary: RunSummary
    result: object = field(repr=False)  # engine.RunResult
    unsaved: str = ""
    tracked: str = ""  # where an MLflow store took it, or why it did not ('' when not tracking)
    said: str = ""  # what else happened to the user's records (a cancelled run it continued went to the trash; a
                    # checkpoint could not be written)
    superseded: str = ""  # the id of the cancelled record it continued, once that went to the trash
    sent: bool = False


def most_pairs(source) -> int:
    """Pairs a round can draw from these digits: each split gives two distinct digits a pair."""
    return min(len(source.train), len(source.test)) // 2


def too_many_pairs(pairs: int, most: int, source_name: str) -> str:
    """Why `pairs` cannot be drawn ('' when they can); the form and the refusal below say it alike."""
    if pairs <= most:
        return ""
    return f"{pairs} pairs need {2 * pairs} distinct digits in each split; {source_name} allows at most {most}"


def refusal(configs: list[RunConfig], source, validation: int = 0) -> str:
    """Why these configs cannot train on these digits or devices, named by field ('' when they can): said before
    anything trains. With `validation` (a sweep's trials), the training digits must hold those pairs too."""
    from workbench.engine import EngineError, resolve_device

    for config in configs:
        why = too_many_pairs(config.pairs, most_pairs(source), source.name)
        need = 2 * (config.pairs + validation)
        if not why and validation and need > len(source.train):
            why = (f"{config.pairs} pairs and {validation} validation pairs need {need} distinct training digits; "
                   f"{source.name} has {len(source.train)}")
        if why:
            return f"pairs: {why}"
    try:
        for config in configs:
            resolve_device(config.device)
    except EngineError as exc:
        return str(exc)
    return ""


def train_and_record(group: Group | list[NamedRun], source, engine: str = "batched", runs_root: Path | None = None,
                     on_epoch: Callable | None = None, refuse: bool = True, track: str | None = None) -> list[Recorded]:
    """Trains the group's runs in one engine call and records each under runs_root (None: nothing is written).
    on_epoch sees the epoch records of the runs not cancelled. `source` is the digits, or a function that loads
    them. With `refuse`, what cannot start (the digits, a device, memory) raises EngineError before anything
    trains; without, every failure becomes failed runs, recorded like any other. Saved runs then go to the MLflow
    store `track` names (else DIGIT_WORKBENCH_TRACK's, if set); a store that fails costs a line, not the record."""
    from workbench.engine import EngineError, failed_result, run_configs

    group = group if isinstance(group, Group) else Group(group)
    configs = [run.config for run in group.runs]

    def report(rec) -> None:
        if group.accept(rec) and on_epoch is not None:
            on_epoch(rec)

    source_name = ""
    checkpoints = Checkpoints(group, {})
    try:
        digits = source() if callable(source) else source
        source_name = digits.name
        why = refusal(configs, digits)
        if why:
            raise EngineError(why)
        checkpoints.folders = claim_folders(group.runs, runs_root, engine)
        start = {i: run.resume.states for i, run in enumerate(group.runs) if run.resume}
        began = usage()
        results = run_configs(configs, digits, on_epoch=report, cancel=group, engine=engine, start=start,
                              on_states=checkpoints.reached if checkpoints.folders else None)
        cost = cost_since(began)  # the group's, shared: its runs trained together
        for result in results:
            result.cost = dict(cost)
    except Exception as exc:  # no digits, no device, too big
        if refuse:
            drop_unstarted(checkpoints.folders.values())
            raise
        reason = str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
        results = [failed_result(config, source_name, engine, reason) for config in configs]
    # a run the user cancelled keeps what was reported before the cancel, never epochs trained unseen after it
    results = [merged(group.as_cancelled(i, r) if i in group.cancelled else r, run.resume)
               for i, (run, r) in enumerate(zip(group.runs, results))]
    recorded = [record(run, result, runs_root, checkpoints.folders.get(i), checkpoints, i)
                for i, (run, result) in enumerate(zip(group.runs, results))]
    send_to_store(recorded, track, runs_root is not None)
    return recorded


def claim_folders(runs: list[NamedRun], runs_root: Path | None, engine: str) -> dict[int, Path]:
    """Each run that keeps weights gets its folder before it trains, for its checkpoints; a killed run continues
    in its own. A folder that cannot be claimed (a full disk) costs the checkpoints, not the run."""
    folders: dict[int, Path] = {}
    if runs_root is None:
        return folders
    for i, run in enumerate(runs):
        if run.resume is not None and run.resume.folder is not None:
            folders[i] = run.resume.folder
        elif resolve_keep(run.config, run.weights)[0] != "none":
            try:
                folders[i] = claim(run, runs_root, engine)
            except OSError:
                continue
    return folders


def send_to_store(recorded: list[Recorded], track: str | None, saving: bool) -> None:
    uri = tracking_uri(track)
    if uri is None or not saving:
        return
    saved = [r for r in recorded if not r.unsaved]
    try:
        sent_lines = send([r.summary for r in saved], uri)
    except Exception as exc:  # never the records' loss, nor a worker thread's end (the app's queue would hang)
        sent_lines = [(f"{r.run.name}: not sent to MLflow ({type(exc).__name__}: {exc}); its local record is kept",
                       False) for r in saved]
    for r, (line, sent) in zip(saved, sent_lines):
        r.tracked, r.sent = line, sent
    for r in recorded:
        if r.unsaved:
            r.tracked = f"{r.run.name}: not sent to MLflow (not saved locally)"


def superseded(run: NamedRun, runs_root: Path) -> tuple[str, str]:
    """A cancelled record that a saved run continued goes to the trash, the new record holding all it held: what
    to say, and the id that went ('' where none did)."""
    old = run.resume.supersedes if run.resume else None
    if old is None:
        return "", ""
    try:
        moved = move_to_trash([old.name], runs_root).done
    except OSError as exc:
        return f"{run.name}: the cancelled record {old.name} it continues stays ({exc})", ""
    if not moved:
        return "", ""
    return (f"{run.name}: continues {old.name}, which went to the trash (`digit-workbench runs restore {old.name}` "
            "brings it back)", old.name)


def record(run: NamedRun, result, runs_root: Path | None, folder: Path | None = None,
           checkpoints: Checkpoints | None = None, index: int = 0) -> Recorded:
    """A run's result saved under runs_root (or not, for None), in its claimed `folder` where it has one, with
    what it continues from (`checkpoints`); where it cannot be saved (a full disk, a runs directory that is a
    file), the summary stays in memory under an id of its own and says why."""
    if runs_root is None:
        return Recorded(run, summarize(result, run.name, run.preset, run.paper, edited=run.edited, tags=run.tags,
                                       note=run.note), result)
    try:
        keep, _ = resolve_keep(run.config, run.weights)
        state = checkpoints.final(index, result.status, keep) if checkpoints is not None else None
        summary = save_run(result, run.name, run.preset, run.paper, runs_root, run.edited, run.tags, run.note, keep,
                           folder, state, run.resume.continues if run.resume else None)
        said, gone = superseded(run, runs_root)
        failed = checkpoints.failed.get(index, "") if checkpoints is not None else ""
        return Recorded(run, summary, result, said="; ".join(line for line in (said, failed) if line),
                        superseded=gone)
    except RunNotSaved as exc:
        unsaved = str(exc)
    except Exception as exc:  # anything else in saving: the results are still shown, with the reason
        unsaved = f"{run.name}: not saved: {type(exc).__name__}: {exc}"
    summary = summarize(result, run.name, run.preset, run.paper, f"unsaved-{secrets.token_hex(3)}", run.edited,
                        run.tags, run.note)
    return Recorded(run, summary, result, unsaved)
