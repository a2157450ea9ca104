"""Training engines. One contract: configs in, per-epoch records through a callback, RunResults out.

`batched` (the default) trains all rounds of configs that share an architecture as one stacked model;
`loop` is the plain reference loop, one round at a time.
"""

from __future__ import annotations

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
    """A rough relative cost, to start the longest stacks first."""
    c = configs[group[0]]
    if c.subnet == "cnn":
        per_image = 150 * c.bc * (1 + c.bc * c.k * c.k / 10) + c.hl * (c.hl * (c.kl - 1) + 100)
    else:
        per_image = c.hl * (c.hl * (c.kl - 1) + 196)
    sides = 1 if c.weight_sharing or c.subnet == "basic" else 2
    return per_image * sides * len(group) * c.rounds * c.epochs * c.pairs


# --------------------------------------------------------------- stacks side by side, one process per core
# Small stacks are bound by per-operation overhead, not arithmetic. Threads share one interpreter lock and
# barely overlap; processes with one thread each do, at the cost of starting them (about 2 s).

_worker: dict = {}


def _worker_init(records, stop, source) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent cancels for us
    torch.set_num_threads(1)
    _worker.update(records=records, stop=stop, source=source)


def _worker_train(configs: list[RunConfig], group: list[int], validation: int) -> list[RunResult]:
    return train_group(configs, group, _worker["source"], _worker["records"].put, _worker["stop"], "batched",
                       validation)


def _train_in_processes(configs, groups, source, on_epoch, cancel, workers, validation):
    import multiprocessing
    import queue
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")  # fork would copy the OpenMP and UI threads' state
    records, stop = ctx.Queue(), ctx.Event()

    def drain(block_s: float) -> None:
        try:
            rec = records.get(timeout=block_s)
            while True:
                if on_epoch:
                    on_epoch(rec)
                rec = records.get_nowait()
        except queue.Empty:
            pass

    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(records, stop, source)) as pool:
        ordered = sorted(groups, key=lambda g: -stack_cost(configs, g))
        pending = {pool.submit(_worker_train, configs, group, validation): group for group in ordered}
        while pending:
            drain(0.05)
            if cancel is not None and cancel.is_set():
                stop.set()
            finished, _ = wait(pending, timeout=0, return_when=FIRST_COMPLETED)
            for future in finished:
                group = pending.pop(future)
                try:
                    done = future.result()
                except Exception as exc:  # a worker that died (killed, out of memory)
                    done = [failed_result(configs[i], source.name, "batched", f"worker process failed: {exc}")
                            for i in group]
                yield group, done
        drain(0.0)


def _reindex(on_epoch: OnEpoch | None, run: int) -> OnEpoch | None:
    """The loop engine numbers its single run 0; report it under its index in the caller's list."""
    if on_epoch is None:
        return None

    def forward(rec: EpochRecord) -> None:
        rec.run = run
        on_epoch(rec)

    return forward
