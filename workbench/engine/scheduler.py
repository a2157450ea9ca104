"""Stacks side by side on a CPU: the calling thread and one worker process per other core.

Small stacks are bound by per-operation overhead, not arithmetic. Threads share one interpreter lock and barely
overlap; processes with one thread each do. The calling thread trains too: it has torch loaded already, so the
longest stack starts at once and one process fewer is started and held in memory. A stack's numbers do not
depend on where it trains: every draw is its replicas' own (randomness.py).
"""

from __future__ import annotations

import math
import os
import queue
import signal
import threading
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch

from ..config import RunConfig
from ..data import DigitSource
from ..procs import spawn_context
from .base import CancelFlag, EpochRecord, OnEpoch, RunResult, library_versions, resolve_device


def failed_result(config: RunConfig, data_source: str, engine: str, reason: str, status: str = "failed") -> RunResult:
    """A run that could not train (no digits, no device, a crash) or was cancelled before it started."""
    return RunResult(status=status, reason=reason, config=config, rounds=[], history=[],
                     data_source=data_source, device=config.device, engine=engine, seed=config.seed,
                     wall_time=0.0, versions=library_versions(), started_at=time.time())


def train_group(configs: list[RunConfig], group: list[int], source: DigitSource, on_epoch: OnEpoch | None,
                cancel: CancelFlag | None, engine: str, validation: int = 0) -> list[RunResult]:
    """Train one stack (batched) or one run after another (loop); a failure becomes failed results."""
    from .batched import run_stack
    from .loop import run_loop

    if cancel is not None and cancel.is_set():
        return [failed_result(configs[i], source.name, engine, "", "cancelled") for i in group]
    try:
        if engine == "batched":
            return run_stack([(i, configs[i]) for i in group], source, on_epoch, cancel, validation)
        return [run_loop(configs[i], i, source, on_epoch, cancel, validation) for i in group]
    except Exception as exc:  # out of memory, a driver error: the run fails, the caller goes on
        reason = f"{type(exc).__name__}: {exc}".strip()
        if not isinstance(exc, RuntimeError):
            reason += " | " + traceback.format_exc(limit=3).replace("\n", " ")
        return [failed_result(configs[i], source.name, engine, reason) for i in group]


def side_by_side(configs: list[RunConfig], groups: list[list[int]]) -> int:
    """How many stacks to train at once: on a CPU, one process per core; on a GPU, one at a time."""
    if len(groups) < 2 or os.environ.get("DIGIT_WORKBENCH_PROCESSES") == "1":
        return 1
    if any(resolve_device(c.device).type != "cpu" for c in configs):
        return 1
    return max(1, min(len(groups), os.cpu_count() or 1))


def stack_cost(configs: list[RunConfig], group: list[int]) -> float:
    """Estimated CPU seconds of one stack, to start the longest stacks first. A step costs a fixed overhead
    (one dispatch per operation), time per weight (Adam and the weight traffic of batch-5 products), and for
    CNNs time per convolution group and per multiply-add; constants fitted to one thread of a 2-core x86 CPU."""
    from ..models import build_model, cnn_side

    c = configs[group[0]]
    replicas = len(group) * c.rounds
    slots = replicas * (2 if c.is_siamese and not c.weight_sharing else 1)
    with torch.device("meta"):  # shapes only: no memory, no draw from the global generator
        weights = replicas * sum(p.numel() for p in build_model(c).parameters())
    step_us = (900 if c.subnet == "cnn" else 500) + 0.0013 * weights
    if c.subnet == "cnn":
        conv_macs = c.bc * (15 - c.k) ** 2 * c.k ** 2 + 2 * c.bc * cnn_side(c.k) ** 2 * c.bc * c.k ** 2
        step_us += 28 * slots + 0.00054 * conv_macs * 2 * c.batch_size * replicas
    return step_us * 1e-6 * c.epochs * math.ceil(c.pairs / c.batch_size)


# ------------------------------------------------------------------------------------- in a worker process

_worker: dict = {}


def _worker_init(records, stop, source) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent cancels for us
    torch.set_num_threads(1)
    _worker.update(records=records, stop=stop, source=source)


def _worker_train(configs: list[RunConfig], group: list[int], validation: int) -> list[RunResult]:
    _worker["records"].put(("started", group[0]))  # a cancel waits for started stacks only
    return train_group(configs, group, _worker["source"], _worker["records"].put, _worker["stop"], "batched",
                       validation)


class SideBySide:
    """Trains groups of configs (stacks) on `workers` cores, longest first: this thread and workers - 1
    processes each take the longest stack left whenever they are free. Records from every stack reach
    `on_epoch` one at a time; a cancel reaches every stack."""

    def __init__(self, configs: list[RunConfig], groups: list[list[int]], source: DigitSource,
                 on_epoch: OnEpoch | None, cancel: CancelFlag | None, workers: int, validation: int):
        self.configs, self.source, self.on_epoch, self.cancel = configs, source, on_epoch, cancel
        self.workers, self.validation = workers, validation
        self.todo = deque(sorted(groups, key=lambda g: -stack_cost(configs, g)))
        self.finished: list[tuple[list[int], list[RunResult]]] = []
        self.lock = threading.Lock()  # guards todo and finished, and hands records to on_epoch one at a time
        self.here_done = threading.Event()
        self.abandoned = threading.Event()
        self.started: set[int] = set()  # first config index of each stack a process has begun

    def run(self) -> list[tuple[list[int], list[RunResult]]]:
        """(group, results) pairs in the order they finished."""
        ctx = spawn_context()
        self.records, self.stop = ctx.Queue(), ctx.Event()
        self.source.share_memory()  # before this thread trains on it: starting a process would move it meanwhile
        threads = torch.get_num_threads()
        group = self._take()  # the longest stack starts here, at once: the processes take a few seconds to start
        pool = ProcessPoolExecutor(self.workers - 1, mp_context=ctx, initializer=_worker_init,
                                   initargs=(self.records, self.stop, self.source))
        dispatcher = threading.Thread(target=self._dispatch, args=(pool,), name="stack-dispatch", daemon=True)
        dispatcher.start()
        torch.set_num_threads(1)  # this thread is one of the workers: leave the other cores to the processes
        try:
            while group is not None:
                results = train_group(self.configs, group, self.source, self._report, self.cancel, "batched",
                                      self.validation)
                self._finish(group, results)
                group = self._take()
        finally:
            torch.set_num_threads(threads)
            self.here_done.set()
            dispatcher.join()
            # a process abandoned while starting sees the stop at once and exits on its own
            pool.shutdown(wait=not self.abandoned.is_set(), cancel_futures=True)
        self._drain()  # records a process put just before it returned
        self.records.close()
        self.records.join_thread()
        return self.finished

    def _take(self) -> list[int] | None:
        with self.lock:
            return self.todo.popleft() if self.todo else None

    def _finish(self, group: list[int], results: list[RunResult]) -> None:
        with self.lock:
            self.finished.append((group, results))

    def _report(self, rec: EpochRecord) -> None:
        if self.on_epoch:
            with self.lock:
                self.on_epoch(rec)

    def _receive(self, item) -> None:
        if isinstance(item, tuple):
            self.started.add(item[1])
        else:
            self._report(item)

    def _drain(self, timeout: float | None = None) -> None:
        try:
            if timeout is not None:
                self._receive(self.records.get(timeout=timeout))
            while True:
                self._receive(self.records.get_nowait())
        except queue.Empty:
            pass

    def _dispatch(self, pool: ProcessPoolExecutor) -> None:
        """Keeps each process busy, passes its records on, and forwards a cancel."""
        pending: dict = {}
        while True:
            while len(pending) < self.workers - 1 and (group := self._take()) is not None:
                pending[pool.submit(_worker_train, self.configs, group, self.validation)] = group
            if not pending and not self.todo and self.here_done.is_set():
                break
            self._drain(timeout=0.05)
            if self.cancel is not None and self.cancel.is_set():
                self.stop.set()
                for future, group in list(pending.items()):
                    if group[0] not in self.started:  # still starting up: nothing to wait for
                        del pending[future]
                        self.abandoned.set()
                        self._finish(group, [failed_result(self.configs[i], self.source.name, "batched", "",
                                                           "cancelled") for i in group])
            done, _ = wait(pending, timeout=0, return_when=FIRST_COMPLETED)
            for future in done:
                group = pending.pop(future)
                try:
                    results = future.result()
                except Exception as exc:  # a worker that died (killed, out of memory)
                    results = [failed_result(self.configs[i], self.source.name, "batched",
                                             f"worker process failed: {exc}") for i in group]
                self._finish(group, results)
