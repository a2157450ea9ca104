"""One sweep on this machine, supervised: its storage, its worker processes, how they ended, and the final
measurement of the configs chosen on validation. The sweep command and the app's sweep screen both drive this
class, so they start, stop and finish a sweep the same way."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from workbench.paper.config import RunConfig
from workbench.records.store import load_runs
from workbench.sweep.spec import SweepSpec
from workbench.sweep.storage import (all_trials, check_study_name, default_storage, export_trials, final_runs,
                                     open_storage, record_finals, record_spec, recorded_finals, trials_csv_path)
from workbench.sweep.worker import max_workers, reap_dead_trials, stage_study, start_workers, workers_log
from workbench.training.group import Group, NamedRun
from workbench.training.train import refusal, train_and_record


@dataclass
class FinalRun:
    """The config chosen on validation after one stage, measured on the test pairs over the spec's final rounds."""

    label: str
    config: RunConfig
    val_mean: float | None
    summary: object  # runs.RunSummary, as saved
    unsaved: str = ""  # why its record is not on disk
    measured_before: bool = False  # by an earlier run of the sweep: nothing was trained again


class SweepNotStarted(Exception):
    """The workers could not start (a storage that cannot be opened, no process to be had); one line."""


@dataclass
class Searched:
    """How a sweep's search ended: whether its workers ran to the end, where its trials went, and any that failed."""

    finished: bool  # False: stopped (the stop event, Ctrl-C or SIGTERM), its trial in flight queued again
    written: Path | None  # the trials CSV, written whatever happened
    unwritten: str  # why the CSV could not be written ('' when it was)
    failure: str  # workers that ended with an error ('' when none did)

    @property
    def trials_line(self) -> str:
        if self.written is not None:
            return f"trials written to {self.written}"
        return f"the trials CSV could not be written: {self.unwritten}"

    @property
    def measures(self) -> bool:
        """Whether the chosen configs are measured next: only after a search that finished without a failure."""
        return self.finished and not self.failure


def check_workers(workers: int) -> int:
    """The worker processes a sweep may start on this machine: 1 to one per core. ValueError saying so."""
    if not 1 <= workers <= max_workers():
        raise ValueError(f"1 to {max_workers()} on this machine (one per core), got {workers}")
    return workers


def sweep_refusal(spec: SweepSpec, source) -> str:
    """Why a sweep's trials cannot train on these digits ('' when they can): said before any worker starts."""
    why = refusal([spec.base], source, spec.validation_pairs)
    return why and (f"{why} (a trial of {spec.name} trains {spec.base.pairs} pairs and scores {spec.validation_pairs} "
                    "validation pairs)")


class SweepRun:
    """One sweep's life, the same for the command and the app's screen: `search` (start the workers, watch,
    stop, write the trials CSV), then `measure_final` (the chosen configs on the test pairs)."""

    def __init__(self, spec: SweepSpec, study: str | None = None, storage_url: str | None = None,
                 data: str = "auto", data_dir: str | None = None):
        self.spec = spec
        self.study = check_study_name(study or spec.name)
        self.storage_url = storage_url or default_storage(self.study)
        self.data, self.data_dir = data, data_dir
        self.storage = None
        self.procs: list = []
        self.started = 0.0

    def open(self) -> None:
        """Opens (or creates) the storage and keeps the spec with the study; raises what the storage raises."""
        self.storage = open_storage(self.storage_url)
        record_spec(self.storage, self.study, self.spec)

    def start(self, workers: int) -> None:
        if self.storage is None:
            self.open()
        self.started = time.monotonic()
        self.procs = start_workers(self.spec, self.storage_url, self.study, workers, self.data, self.data_dir)

    @property
    def running(self) -> bool:
        return any(p.is_alive() for p in self.procs)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0

    def trials(self):
        return all_trials(self.spec, self.storage, self.study)

    def watch(self, on_trials: Callable[[list], None], stop: threading.Event | None = None,
              poll_s: float = 1.0) -> bool:
        """Hands the trials to on_trials every poll_s while the workers run, and once more when they have ended;
        stops the workers when `stop` is set (then returns False)."""
        while self.running:
            if stop is not None and stop.is_set():
                self.stop()
                on_trials(self.trials())
                return False
            on_trials(self.trials())
            time.sleep(poll_s)
        on_trials(self.trials())
        return True

    def stop(self) -> None:
        """Stops the workers. A trial they had in flight is failed at once and its point queued again, so the
        study shows no trial running and running the sweep again continues it."""
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.join(5)
        if self.storage is not None:
            for index, stage in enumerate(self.spec.stages):
                reap_dead_trials(stage_study(self.spec, self.storage, self.study, index), stage)

    def failed_workers(self) -> list[int]:
        """Exit codes of the workers that ended with an error."""
        return [p.exitcode for p in self.procs if p.exitcode not in (0, None)]

    def failure_note(self) -> str:
        """One line on the workers that failed, naming the log their tracebacks went to ('' when none did)."""
        failed = self.failed_workers()
        if not failed:
            return ""
        return (f"{len(failed)} worker(s) ended with an error (exit {failed}); what happened: "
                f"{workers_log(self.study, self.storage_url)}; running the sweep again continues the study")

    def search(self, workers: int, on_trials: Callable[[list], None], stop: threading.Event | None = None,
               poll_s: float = 1.0, out: Path | None = None) -> Searched:
        """Starts the workers (SweepNotStarted when they cannot), hands the trials to on_trials while they run,
        stops them on `stop` or an interrupt, and writes the trials CSV whatever happened."""
        try:
            self.start(check_workers(workers))
        except Exception as exc:
            raise SweepNotStarted(f"cannot start: {type(exc).__name__}: {exc}") from None
        try:
            finished = self.watch(on_trials, stop, poll_s)
        except KeyboardInterrupt:  # the command's Ctrl-C or SIGTERM: the trials so far are kept
            self.stop()
            finished = False
        try:
            written, unwritten = self.export(out), ""
        except OSError as exc:
            written, unwritten = None, str(exc.strerror or exc)
        return Searched(finished, written, unwritten, self.failure_note())

    def export(self, out: Path | None = None) -> Path:
        return export_trials(self.spec, self.storage, self.study, out or trials_csv_path(self.study, self.storage_url))

    def measure_final(self, source, runs_root: Path, on_epoch=None, cancel=None) -> list[FinalRun]:
        """Trains the config chosen after each stage on the test pairs and records each as a run; when every
        choice was measured before (a rerun of a finished sweep), returns those runs instead of training again."""
        chosen = final_runs(self.spec, self.storage, self.study)
        earlier = self.measured_before(chosen, runs_root)
        if not chosen or earlier:
            return earlier
        runs = [NamedRun(label, config, None, self.spec.paper) for label, config, _ in chosen]
        recorded = train_and_record(Group(runs, stop=cancel), source, runs_root=runs_root, on_epoch=on_epoch)
        finals = [FinalRun(label, config, val, r.summary, r.unsaved) for (label, config, val), r in zip(chosen, recorded)]
        if all(f.summary.status == "done" and not f.unsaved for f in finals):
            record_finals(self.storage, self.study, [{"label": f.label, "config": f.config.to_dict(),
                                                      "run": f.summary.id} for f in finals])
        return finals

    def measured_before(self, chosen, runs_root: Path) -> list[FinalRun]:
        """The runs an earlier final measurement recorded, if they measured exactly these choices and are all
        still in runs_root; [] otherwise."""
        stored = recorded_finals(self.storage, self.study)
        if not chosen or [(f.get("label"), f.get("config")) for f in stored] != [(l, c.to_dict()) for l, c, _ in chosen]:
            return []
        summaries = {s.id: s for s in load_runs(runs_root)[0]}
        if not all(f.get("run") in summaries for f in stored):
            return []
        return [FinalRun(label, config, val, summaries[f["run"]], measured_before=True)
                for (label, config, val), f in zip(chosen, stored)]
