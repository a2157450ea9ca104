"""Training engines. One contract: configs in, per-epoch records through a callback, RunResults out.

`batched` (the default) trains all rounds of configs that share an architecture as one stacked model;
`loop` is the plain reference loop, one round at a time.
"""

from __future__ import annotations

import math
import os
import time
import traceback

import torch

from ..config import RunConfig
from ..data import DigitSource
from .base import (CancelFlag, EngineError, EpochRecord, OnEpoch, RoundResult, RunResult, library_versions,
                   make_cancel, resolve_device)

ENGINES = ("batched", "loop")

__all__ = ["ENGINES", "CancelFlag", "EngineError", "EpochRecord", "RoundResult", "RunResult", "failed_result", "make_cancel",
           "run_configs", "stack_groups"]


def stack_groups(configs: list[RunConfig]) -> list[list[int]]:
    """Indices of configs grouped by architecture, in first-seen order: each group trains as one stack."""
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(config.architecture_key(), []).append(i)
    return list(groups.values())


def failed_result(config: RunConfig, data_source: str, engine: str, reason: str) -> RunResult:
    """A run that could not train (no digits, no device, a crash): recorded like any other."""
    return RunResult(status="failed", reason=reason, config=config, rounds=[], history=[],
                     data_source=data_source, device=config.device, engine=engine, seed=config.seed,
                     wall_time=0.0, versions=library_versions(), started_at=time.time())


def run_configs(configs: list[RunConfig], source: DigitSource, on_epoch: OnEpoch | None = None,
                cancel: CancelFlag | None = None, engine: str = "batched", validation: int = 0) -> list[RunResult]:
    """Train every config; results come back in the order given. A device that cannot be had raises
    EngineError before anything trains; any failure during training becomes a failed RunResult.
    With `validation` > 0 each round also scores that many validation pairs drawn from training digits."""
    if engine not in ENGINES:
        raise EngineError(f"engine: unknown engine {engine!r} ({', '.join(ENGINES)})")
    for config in configs:
        resolve_device(config.device)
    groups = stack_groups(configs) if engine == "batched" else [[i] for i in range(len(configs))]
    results: list[RunResult | None] = [None] * len(configs)
    workers = side_by_side(configs, groups) if engine == "batched" else 1
    if workers > 1:
        for group, done in _train_in_processes(configs, groups, source, on_epoch, cancel, workers, validation):
            for i, result in zip(group, done):
                results[i] = result
    else:
        for group in groups:
            for i, result in zip(group, train_group(configs, group, source, on_epoch, cancel, engine, validation)):
                results[i] = result
    return results  # type: ignore[return-value]


def train_group(configs: list[RunConfig], group: list[int], source: DigitSource, on_epoch: OnEpoch | None,
                cancel: CancelFlag | None, engine: str, validation: int = 0) -> list[RunResult]:
    """Train one stack (batched) or one run after another (loop); a failure becomes failed results."""
    from .batched import run_stack
    from .loop import run_loop

    if cancel is not None and cancel.is_set():
        return [cancelled_result(configs[i], source, engine) for i in group]
    try:
        if engine == "batched":
            return run_stack([(i, configs[i]) for i in group], source, on_epoch, cancel, validation)
        return [run_loop([configs[i]], source, _reindex(on_epoch, i), cancel, validation)[0] for i in group]
    except Exception as exc:  # out of memory, a driver error: the run fails, the caller goes on
        reason = f"{type(exc).__name__}: {exc}".strip()
        if not isinstance(exc, RuntimeError):
            reason += " | " + traceback.format_exc(limit=3).replace("\n", " ")
        return [failed_result(configs[i], source.name, engine, reason) for i in group]


def cancelled_result(config: RunConfig, source: DigitSource, engine: str) -> RunResult:
    result = failed_result(config, source.name, engine, "")
    result.status = "cancelled"
    return result


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


# --------------------------------------------------------------- stacks side by side, one process per core
# Small stacks are bound by per-operation overhead, not arithmetic. Threads share one interpreter lock and
# barely overlap; processes with one thread each do. The calling thread trains too: it has torch loaded
# already, so the first stack starts at once and one process fewer is started and held in memory.

_worker: dict = {}


def _worker_init(records, stop, source) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent cancels for us
    torch.set_num_threads(1)
    _worker.update(records=records, stop=stop, source=source)


def _worker_train(configs: list[RunConfig], group: list[int], validation: int) -> list[RunResult]:
    _worker["records"].put(("started", group[0]))  # a cancel waits for started stacks only
    return train_group(configs, group, _worker["source"], _worker["records"].put, _worker["stop"], "batched",
                       validation)


def _train_in_processes(configs, groups, source, on_epoch, cancel, workers, validation):
    """Trains the groups on `workers` cores: this thread and workers - 1 processes take the longest stack
    left whenever they are free. Returns (group, results) pairs as they finished."""
    import multiprocessing
    import queue
    import threading
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    todo = deque(sorted(groups, key=lambda g: -stack_cost(configs, g)))
    finished: list = []
    lock = threading.Lock()  # guards todo and finished, and hands records to on_epoch one at a time
    here_done = threading.Event()

    def report(rec: EpochRecord) -> None:
        if on_epoch:
            with lock:
                on_epoch(rec)

    def take():
        with lock:
            return todo.popleft() if todo else None

    ctx = multiprocessing.get_context("spawn")  # fork would copy the OpenMP and UI threads' state
    records, stop = ctx.Queue(), ctx.Event()
    source.share_memory()  # before this thread trains on it: starting a process would move it meanwhile

    started: set[int] = set()
    abandoned = threading.Event()

    def receive(item) -> None:
        if isinstance(item, tuple):
            started.add(item[1])
        else:
            report(item)

    def dispatch(pool) -> None:
        """Keeps each process busy, passes its records on, and forwards a cancel."""
        pending: dict = {}
        while True:
            while len(pending) < workers - 1 and (group := take()) is not None:
                pending[pool.submit(_worker_train, configs, group, validation)] = group
            if not pending and not todo and here_done.is_set():
                break
            try:
                receive(records.get(timeout=0.05))
                while True:
                    receive(records.get_nowait())
            except queue.Empty:
                pass
            if cancel is not None and cancel.is_set():
                stop.set()
                for future, group in list(pending.items()):
                    if group[0] not in started:  # still starting up: nothing to wait for
                        del pending[future]
                        abandoned.set()
                        with lock:
                            finished.append((group, [cancelled_result(configs[i], source, "batched") for i in group]))
            done, _ = wait(pending, timeout=0, return_when=FIRST_COMPLETED)
            for future in done:
                group = pending.pop(future)
                try:
                    results = future.result()
                except Exception as exc:  # a worker that died (killed, out of memory)
                    results = [failed_result(configs[i], source.name, "batched", f"worker process failed: {exc}")
                               for i in group]
                with lock:
                    finished.append((group, results))

    threads = torch.get_num_threads()
    group = take()  # the longest stack starts here, at once: the processes take a few seconds to start
    pool = ProcessPoolExecutor(workers - 1, mp_context=ctx, initializer=_worker_init, initargs=(records, stop, source))
    dispatcher = threading.Thread(target=dispatch, args=(pool,), name="stack-dispatch", daemon=True)
    dispatcher.start()
    torch.set_num_threads(1)  # this thread is one of the workers: leave the other cores to the processes
    try:
        while group is not None:
            results = train_group(configs, group, source, report, cancel, "batched", validation)
            with lock:
                finished.append((group, results))
            group = take()
    finally:
        torch.set_num_threads(threads)
        here_done.set()
        dispatcher.join()
        # a process abandoned while starting sees the stop at once and exits on its own
        pool.shutdown(wait=not abandoned.is_set(), cancel_futures=True)
    try:  # records a process put just before it returned
        while True:
            receive(records.get_nowait())
    except queue.Empty:
        pass
    records.close()
    records.join_thread()
    return finished


def _reindex(on_epoch: OnEpoch | None, run: int) -> OnEpoch | None:
    """The loop engine numbers its single run 0; report it under its index in the caller's list."""
    if on_epoch is None:
        return None

    def forward(rec: EpochRecord) -> None:
        rec.run = run
        on_epoch(rec)

    return forward
