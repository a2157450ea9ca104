"""Stacks side by side on a CPU: the calling thread and one worker process per other core.

Small stacks are bound by per-operation overhead, not arithmetic. Threads share one interpreter lock and barely
overlap; processes with one thread each do. The calling thread trains too: it has torch loaded already, so the
longest stack starts at once and one process fewer is started and held in memory. A stack's numbers do not
depend on where it trains: every draw is its replicas' own (paper/randomness.py).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Sequence

import torch

from workbench.engine.base import (CancelFlag, EngineError, EpochRecord, OnEpoch, RunResult, SharedCancel, StackCancel,
                                   StopRun, library_versions, resolve_device)
from workbench.engine.batched import run_stack
from workbench.engine.loop import run_loop
from workbench.engine.stacked import EVAL_CHUNK
from workbench.engine.state import OnStates, RoundState, Starts
from workbench.paper.architecture import cnn_side, conv1_side, convolution_weights, weight_count
from workbench.paper.config import RunConfig
from workbench.paper.data import DigitSource
from workbench.procs import child_of, spawn_context, starting_children

SPLIT_WORTH_S = 6.0  # estimated CPU seconds below which half a stack is not worth starting a process for


def failed_result(config: RunConfig, data_source: str, engine: str, reason: str, status: str = "failed") -> RunResult:
    """A run that could not train (no digits, no device, a crash) or was cancelled before it started."""
    return RunResult(status=status, reason=reason, config=config, rounds=[], history=[],
                     data_source=data_source, device=config.device, engine=engine, seed=config.seed,
                     wall_time=0.0, versions=library_versions(), started_at=time.time())


@dataclass(frozen=True)
class StackJob:
    """What one stack trains: the configs `group` (indices into the caller's list), rounds `rounds` of each."""

    number: int
    group: tuple[int, ...]
    rounds: Sequence[int]


def plan_jobs(configs: list[RunConfig], groups: list[list[int]], cores: int,
              start: Starts | None = None) -> list[StackJob]:
    """One job per stack; while cores would sit idle, or while the costliest stack alone costs more than a core's
    share of all of them (one wide stack beside a small one left a core idle for most of the call), the costliest
    stack is split by rounds into two (a round's numbers do not depend on its stack-mates), if each half is worth
    a process start. Runs that continue (`start`) train alone, a stack for each epoch their rounds continue from."""
    start = start or {}
    jobs: list[tuple[tuple[int, ...], Sequence[int]]] = []
    for g in groups:
        if not any(i in start for i in g):
            jobs.append((tuple(g), range(configs[g[0]].rounds)))
            continue
        for i in g:
            begun: dict[int, list[int]] = {}
            for r in range(configs[i].rounds):
                state = start.get(i, {}).get(r)
                begun.setdefault(state.epoch if state is not None else 0, []).append(r)
            jobs += [((i,), tuple(rounds)) for rounds in begun.values()]
    while cores > 1:
        costs = [stack_cost(configs, group, rounds) for group, rounds in jobs]
        group, rounds = jobs[costs.index(max(costs))]
        if len(jobs) >= cores and max(costs) <= sum(costs) / cores:
            break
        if len(rounds) < 2 or max(costs) < 2 * SPLIT_WORTH_S:
            break
        jobs.remove((group, rounds))
        half = len(rounds) // 2
        jobs += [(group, rounds[:half]), (group, rounds[half:])]
    return [StackJob(k, group, rounds) for k, (group, rounds) in enumerate(jobs)]


def job_bytes(configs: list[RunConfig], job: StackJob) -> int:
    """What one stack holds while it trains: per replica its weights, their gradients and Adam's two moments, a
    checkpoint's copy of the weights and moments (records/checkpoint.py), its pairs in three copies (sets, the epoch's order,
    the evaluation chunks), and the widest activations. Replicas of several learning rates (adam.py) also keep
    whose each weight is, and where rates meet inside a line (only convolutions' slots are not whole lines) the
    weights and moments as they were, their positions, and with three rates or more a copy of them."""
    c = configs[job.group[0]]
    replicas = len(job.group) * len(job.rounds)
    weights = weight_count(c)
    rates = len({configs[i].rate_class for i in job.group})
    # a convolution's four tensors, each padded to whole lines
    convolutions = (convolution_weights(c) + (4 * 16 if c.subnet == "cnn" else 0)) * (1 if c.weight_sharing else 2)
    # whose each weight is: 2 bytes, padding included (counted as twice as many)
    rate_classes = 0 if rates == 1 else 4 * weights + (12 + 8 + (12 if rates > 2 else 0)) * convolutions
    pairs = 3 * c.pairs * 2 * 14 * 14 * 4
    widest = max(c.hl, c.c_hl, 2 * c.bc * conv1_side(c.k) ** 2, 20)
    activations = 8 * EVAL_CHUNK * 2 * widest * 4  # a few layers' worth of one evaluation chunk
    return replicas * (28 * weights + rate_classes + pairs + activations)


def available_bytes() -> int | None:
    """MemAvailable of this machine (Linux), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


PROCESS_BYTES = 600 * 2 ** 20  # torch and the digits in each process that trains


def check_memory(configs: list[RunConfig], jobs: list[StackJob], processes: int) -> None:
    """Refuses, before anything trains, what will not fit in this machine's memory, with the figures."""
    available = available_bytes()
    if available is None:
        return
    held = {job.number: job_bytes(configs, job) for job in jobs}
    need = sum(held.values()) + processes * PROCESS_BYTES
    if need > available:
        biggest = max(jobs, key=lambda j: held[j.number])
        c = configs[biggest.group[0]]
        raise EngineError(
            f"memory: this needs about {need / 2 ** 30:.1f} GB and {available / 2 ** 30:.1f} GB are available "
            f"(the largest stack: {len(biggest.group) * len(biggest.rounds)} replicas of "
            f"{weight_count(c) / 1e6:.1f} M weights, each kept with its gradient, Adam's two moments and a "
            "checkpoint's copy); "
            f"fewer rounds or smaller layers (HL, C-HL, BC) fit")


def train_group(configs: list[RunConfig], group: list[int], source: DigitSource, on_epoch: OnEpoch | None,
                cancel: CancelFlag | None, engine: str, validation: int = 0, rounds: Sequence[int] | None = None,
                start: Starts | None = None, on_states: OnStates | None = None,
                stop_run: StopRun | None = None) -> list[RunResult]:
    """Train one stack (batched) or one run after another (loop); a failure becomes failed results."""
    cancel = None if cancel is None else StackCancel(cancel, group)
    if cancel is not None and cancel.is_set():
        return [failed_result(configs[i], source.name, engine, "", "cancelled") for i in group]
    try:
        if engine == "batched":
            return run_stack([(i, configs[i]) for i in group], source, on_epoch, cancel, validation, rounds, start,
                             on_states, stop_run)
        return [run_loop(configs[i], i, source, on_epoch, cancel, validation, (start or {}).get(i), on_states)
                for i in group]
    except Exception as exc:  # out of memory, a driver error: the run fails, the caller goes on
        reason = f"{type(exc).__name__}: {exc}".strip()
        if not isinstance(exc, RuntimeError):
            reason += " | " + traceback.format_exc(limit=3).replace("\n", " ")
        return [failed_result(configs[i], source.name, engine, reason) for i in group]


def cores_for(configs: list[RunConfig]) -> int:
    """How many stacks may train at once: on a CPU, one per core; on a GPU, gpu_stacks()."""
    if os.environ.get("DIGIT_WORKBENCH_PROCESSES") == "1":
        return 1
    if multiprocessing.current_process().daemon:  # a sweep's worker: the sweep already runs one per core, and a
        return 1                                  # daemonic process may not start processes of its own
    if any(resolve_device(c.device).type != "cpu" for c in configs):
        return gpu_stacks()
    return os.cpu_count() or 1


def gpu_stacks() -> int:
    """Stacks that train at once on one GPU (DIGIT_WORKBENCH_GPU_STACKS, default 1), each from its own thread
    on its own CUDA stream (on_streams). A small stack leaves most of a large GPU idle even as one graph per
    epoch; kernels of several streams run side by side there (processes would only take turns). Opt-in until
    measured on a GPU: benchmarks/device_check.sh measures 1 against 4."""
    try:
        return max(1, int(os.environ.get("DIGIT_WORKBENCH_GPU_STACKS", "1")))
    except ValueError:
        return 1


def on_streams(configs: list[RunConfig], jobs: list[StackJob], source: DigitSource, on_epoch: OnEpoch | None,
               cancel: CancelFlag | None, workers: int, validation: int, start: Starts | None = None,
               on_states: OnStates | None = None) -> list[tuple[StackJob, list[RunResult]]]:
    """Stacks on `workers` threads of this process, longest first, each on a CUDA stream of its own (on a CPU,
    the same threads without streams: the tests check the plumbing there). A stack's numbers do not depend on
    which thread or stream trains it; records reach `on_epoch` one at a time."""
    lock = threading.Lock()

    def report(rec: EpochRecord) -> None:
        if on_epoch:
            with lock:
                on_epoch(rec)

    def report_states(states: list[tuple[int, int, RoundState]]) -> None:
        with lock:
            on_states(states)

    def train(job: StackJob) -> tuple[StackJob, list[RunResult]]:
        device = resolve_device(configs[job.group[0]].device)
        stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        with torch.cuda.stream(stream) if stream is not None else nullcontext():
            return job, train_group(configs, list(job.group), source, report, cancel, "batched", validation,
                                    job.rounds, start, report_states if on_states else None)

    with ThreadPoolExecutor(workers, thread_name_prefix="gpu-stack") as pool:
        return list(pool.map(train, longest_first(configs, jobs)))


def longest_first(configs: list[RunConfig], jobs: list[StackJob]) -> list[StackJob]:
    return sorted(jobs, key=lambda j: -stack_cost(configs, j.group, j.rounds))


def stack_cost(configs: list[RunConfig], group, rounds: range | None = None) -> float:
    """Estimated CPU seconds of one stack, to start the longest stacks first. A step costs a fixed overhead
    (one dispatch per operation), time per weight (Adam and the weight traffic of batch-5 products), and for
    CNNs time per convolution group and per multiply-add; constants fitted to one thread of a 2-core x86 CPU."""
    c = configs[group[0]]
    replicas = len(group) * (len(rounds) if rounds is not None else c.rounds)
    slots = replicas * (2 if c.is_siamese and not c.weight_sharing else 1)
    weights = replicas * weight_count(c)
    step_us = (900 if c.subnet == "cnn" else 500) + 0.0013 * weights
    if c.subnet == "cnn":
        conv_macs = c.bc * conv1_side(c.k) ** 2 * c.k ** 2 + 2 * c.bc * cnn_side(c.k) ** 2 * c.bc * c.k ** 2
        step_us += 28 * slots + 0.00054 * conv_macs * 2 * c.batch_size * replicas
    return step_us * 1e-6 * c.epochs * math.ceil(c.pairs / c.batch_size)


# ------------------------------------------------------------------------------------- in a worker process

_worker: dict = {}


def _worker_init(parent: int, records, stop, cancelled, source) -> None:
    child_of(parent)
    torch.set_num_threads(1)
    _worker.update(records=records, stop=SharedCancel(stop, cancelled), source=source)


def _worker_train(configs: list[RunConfig], job: StackJob, validation: int, start: Starts | None,
                  states: bool) -> list[RunResult]:
    records = _worker["records"]
    records.put(("started", job.number))  # a cancel waits for started stacks only
    on_states = (lambda reached: records.put(("states", reached))) if states else None
    return train_group(configs, list(job.group), _worker["source"], records.put, _worker["stop"], "batched",
                       validation, job.rounds, start, on_states)


class SideBySide:
    """Trains stacks (jobs) on `workers` cores, longest first: this thread and workers - 1 processes each take
    the longest job left whenever they are free. Records from every stack reach `on_epoch` one at a time; a
    cancel reaches every stack."""

    def __init__(self, configs: list[RunConfig], jobs: list[StackJob], source: DigitSource,
                 on_epoch: OnEpoch | None, cancel: CancelFlag | None, workers: int, validation: int,
                 start: Starts | None = None, on_states: OnStates | None = None):
        self.configs, self.source, self.on_epoch, self.cancel = configs, source, on_epoch, cancel
        self.workers, self.validation, self.start, self.on_states = workers, validation, start, on_states
        self.todo = deque(longest_first(configs, jobs))
        self.finished: list[tuple[StackJob, list[RunResult]]] = []
        self.lock = threading.Lock()  # guards todo and finished, and hands records to on_epoch one at a time
        self.here_done = threading.Event()
        self.abandoned = threading.Event()
        self.started: set[int] = set()  # numbers of the jobs a process has begun

    def run(self) -> list[tuple[StackJob, list[RunResult]]]:
        """(job, results) pairs in the order they finished."""
        ctx = spawn_context()
        self.records, self.stop = ctx.Queue(), ctx.Event()
        self.cancelled = ctx.Array("b", len(self.configs), lock=False)  # runs cancelled by themselves
        self.source.share_memory()  # before this thread trains on it: starting a process would move it meanwhile
        job = self._take()  # the longest stack starts here, at once: the processes take a few seconds to start
        others = set(multiprocessing.active_children())  # processes this one had before the pool's
        pool = ProcessPoolExecutor(self.workers - 1, mp_context=ctx, initializer=_worker_init,
                                   initargs=(os.getpid(), self.records, self.stop, self.cancelled, self.source))
        with starting_children():  # each submit starts a process, here rather than in the dispatcher's thread
            for _ in range(self.workers - 1):
                pool.submit(os.getpid)
        dispatcher = threading.Thread(target=self._dispatch, args=(pool,), name="stack-dispatch", daemon=True)
        dispatcher.start()
        try:  # this thread trains on one torch thread, as every stack does (batched.one_thread)
            while job is not None:
                results = train_group(self.configs, list(job.group), self.source, self._report, self.cancel,
                                      "batched", self.validation, job.rounds, self.start,
                                      self._report_states if self.on_states else None)
                self._finish(job, results)
                job = self._take()
        finally:
            self.here_done.set()
            dispatcher.join()
            if self.abandoned.is_set():
                # a process still starting would read the shared digits after this one let them go (and print
                # FileNotFoundError over the user's screen): it has nothing to finish, so it is ended here
                for process in set(multiprocessing.active_children()) - others:
                    process.terminate()
            self._shut_down(pool)
        self._drain()  # records a process put just before it returned
        self.records.close()
        self.records.join_thread()
        return self.finished

    def _shut_down(self, pool: ProcessPoolExecutor) -> None:
        """Ends the pool's processes, reading their records meanwhile: a process exits only once what it put on the
        records queue is read (a round's states are larger than a pipe holds), so waiting without reading would
        wait for ever."""
        closing = threading.Thread(target=pool.shutdown, name="stack-pool-shutdown", daemon=True,
                                   kwargs={"wait": not self.abandoned.is_set(), "cancel_futures": True})
        closing.start()
        while closing.is_alive():
            self._drain(timeout=0.05)
        closing.join()

    def _take(self) -> StackJob | None:
        with self.lock:
            return self.todo.popleft() if self.todo else None

    def _finish(self, job: StackJob, results: list[RunResult]) -> None:
        with self.lock:
            self.finished.append((job, results))

    def _report(self, rec: EpochRecord) -> None:
        if self.on_epoch:
            with self.lock:
                self.on_epoch(rec)

    def _report_states(self, states: list[tuple[int, int, RoundState]]) -> None:
        with self.lock:
            self.on_states(states)

    def _receive(self, item) -> None:
        if isinstance(item, tuple) and item[0] == "states":
            self._report_states(item[1])
        elif isinstance(item, tuple):
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

    def _forward_run_cancels(self) -> None:
        """Runs cancelled by themselves, for the processes' stacks (SharedCancel) to see."""
        of = getattr(self.cancel, "is_cancelled", None)
        if of is not None:
            for i in range(len(self.configs)):
                if not self.cancelled[i] and of(i):
                    self.cancelled[i] = 1

    def _dispatch(self, pool: ProcessPoolExecutor) -> None:
        """Keeps each process busy, passes its records on, and forwards a cancel."""
        pending: dict = {}
        while True:
            while len(pending) < self.workers - 1 and (job := self._take()) is not None:
                pending[pool.submit(_worker_train, self.configs, job, self.validation, self.start,
                                    self.on_states is not None)] = job
            if not pending and not self.todo and self.here_done.is_set():
                break
            self._drain(timeout=0.05)
            self._forward_run_cancels()
            if self.cancel is not None and self.cancel.is_set():
                self.stop.set()
                for future, job in list(pending.items()):
                    if job.number not in self.started:  # still starting up: nothing to wait for
                        del pending[future]
                        self.abandoned.set()
                        self._finish(job, [failed_result(self.configs[i], self.source.name, "batched", "",
                                                         "cancelled") for i in job.group])
            done, _ = wait(pending, timeout=0, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    results = future.result()
                except Exception as exc:  # a worker that died (killed, out of memory)
                    results = [failed_result(self.configs[i], self.source.name, "batched",
                                             f"worker process failed: {exc}") for i in job.group]
                self._finish(job, results)
