"""Training engines. One contract: configs in, per-epoch records through a callback, RunResults out.

`batched` (the default) trains all rounds of configs that share an architecture as one stacked model
(batched.py, stacked.py), stacks side by side on a CPU's cores (scheduler.py); `loop` is the plain reference
loop, one round at a time (loop.py). Every random draw of a round comes from (seed, round) (paper/randomness.py).
"""

from __future__ import annotations

from workbench.engine.base import (CancelFlag, EngineError, EpochRecord, OnEpoch, RoundResult, RunResult, StopRun,
                                   cuda_unavailable_reason, merge_rounds, resolve_device)
from workbench.engine.scheduler import (SideBySide, StackJob, check_memory, cores_for, failed_result, on_streams,
                                        plan_jobs, train_group)
from workbench.engine.state import OnStates, RoundState, Starts, Throttle, load_weights
from workbench.paper.config import ENGINES, RunConfig
from workbench.paper.data import DigitSource

# What the rest of the workbench may use: it imports the engine only through here (tests/test_architecture.py).
__all__ = ["CancelFlag", "EngineError", "EpochRecord", "RoundResult", "RoundState", "RunResult", "Throttle",
           "cuda_unavailable_reason", "failed_result", "load_weights", "resolve_device", "run_configs",
           "stack_groups"]


def stack_groups(configs: list[RunConfig]) -> list[list[int]]:
    """Indices of configs grouped by architecture, in first-seen order: each group trains as one stack."""
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(config.architecture_key(), []).append(i)
    return list(groups.values())


def run_configs(configs: list[RunConfig], source: DigitSource, on_epoch: OnEpoch | None = None,
                cancel: CancelFlag | None = None, engine: str = "batched", validation: int = 0,
                start: Starts | None = None, on_states: OnStates | None = None,
                stop_run: StopRun | None = None) -> list[RunResult]:
    """Train every config; results come back in the order given. A device that cannot be had raises
    EngineError before anything trains; any failure during training becomes a failed RunResult.
    With `validation` > 0 each round also scores that many validation pairs drawn from training digits.
    `start` (by config index, then round) continues rounds from an earlier epoch's state (engine/state.py);
    `on_states` sees every round's state after each epoch, to continue it later. `stop_run` (a sweep's pruner;
    batched engine) is asked after each epoch whether a run stops there; its stacks train in this process, where it
    can ask."""
    if engine not in ENGINES:
        raise EngineError(f"engine: unknown engine {engine!r} ({', '.join(ENGINES)})")
    if stop_run is not None and engine != "batched":
        raise EngineError("engine: only the batched engine stops a run part-way (stop_run)")
    for config in configs:
        resolve_device(config.device)
    on_cpu = resolve_device(configs[0].device).type == "cpu"
    if engine == "batched":
        cores = cores_for(configs)
        jobs = plan_jobs(configs, stack_groups(configs), cores if on_cpu else 1, start)  # a GPU stack: never split
        workers = 1 if stop_run is not None else min(cores, len(jobs))
    else:
        jobs, workers = [StackJob(i, (i,), range(c.rounds)) for i, c in enumerate(configs)], 1
    if on_cpu:
        check_memory(configs, jobs, workers)
    if workers > 1 and not on_cpu:
        finished = on_streams(configs, jobs, source, on_epoch, cancel, workers, validation, start, on_states)
    elif workers > 1:
        finished = SideBySide(configs, jobs, source, on_epoch, cancel, workers, validation, start, on_states).run()
    else:
        finished = [(job, train_group(configs, list(job.group), source, on_epoch, cancel, engine, validation,
                                      job.rounds if engine == "batched" else None, start, on_states, stop_run))
                    for job in jobs]
    parts: list[list[RunResult]] = [[] for _ in configs]
    for job, done in finished:
        for i, result in zip(job.group, done):
            parts[i].append(result)
    return [merge_rounds(p) for p in parts]
