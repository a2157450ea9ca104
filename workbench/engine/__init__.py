"""Training engines. One contract: configs in, per-epoch records through a callback, RunResults out.

`batched` (the default) trains all rounds of configs that share an architecture as one stacked model;
`loop` is the plain reference loop, one round at a time.
"""

from __future__ import annotations

import time
import traceback

from ..config import RunConfig
from ..data import DigitSource
from .base import (CancelFlag, EngineError, EpochRecord, OnEpoch, RoundResult, RunResult, library_versions,
                   make_cancel, resolve_device)

ENGINES = ("batched", "loop")

__all__ = ["ENGINES", "CancelFlag", "EngineError", "EpochRecord", "RoundResult", "RunResult", "make_cancel",
           "run_configs", "stack_groups"]


def stack_groups(configs: list[RunConfig]) -> list[list[int]]:
    """Indices of configs grouped by architecture, in first-seen order: each group trains as one stack."""
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(config.architecture_key(), []).append(i)
    return list(groups.values())


def failed_result(config: RunConfig, source: DigitSource, engine: str, reason: str) -> RunResult:
    return RunResult(status="failed", reason=reason, config=config, rounds=[], history=[],
                     data_source=source.name, device=config.device, engine=engine, seed=config.seed,
                     wall_time=0.0, versions=library_versions(), started_at=time.time())


def run_configs(configs: list[RunConfig], source: DigitSource, on_epoch: OnEpoch | None = None,
                cancel: CancelFlag | None = None, engine: str = "batched") -> list[RunResult]:
    """Train every config; results come back in the order given. A device that cannot be had raises
    EngineError before anything trains; any failure during training becomes a failed RunResult."""
    if engine not in ENGINES:
        raise EngineError(f"engine: unknown engine {engine!r} ({', '.join(ENGINES)})")
    for config in configs:
        resolve_device(config.device)
    from .batched import run_stack
    from .loop import run_loop

    results: list[RunResult | None] = [None] * len(configs)
    groups = stack_groups(configs) if engine == "batched" else [[i] for i in range(len(configs))]
    for group in groups:
        if cancel is not None and cancel.is_set():
            for i in group:
                results[i] = failed_result(configs[i], source, engine, "")
                results[i].status = "cancelled"
            continue
        try:
            if engine == "batched":
                done = run_stack([(i, configs[i]) for i in group], source, on_epoch, cancel)
            else:
                done = [run_loop([configs[i]], source, _reindex(on_epoch, i), cancel)[0] for i in group]
        except Exception as exc:  # out of memory, a driver error: the run fails, the caller goes on
            reason = f"{type(exc).__name__}: {exc}".strip()
            if not isinstance(exc, RuntimeError):
                reason += " | " + traceback.format_exc(limit=3).replace("\n", " ")
            done = [failed_result(configs[i], source, engine, reason) for i in group]
        for i, result in zip(group, done):
            results[i] = result
    return results  # type: ignore[return-value]


def _reindex(on_epoch: OnEpoch | None, run: int) -> OnEpoch | None:
    """The loop engine numbers its single run 0; report it under its index in the caller's list."""
    if on_epoch is None:
        return None

    def forward(rec: EpochRecord) -> None:
        rec.run = run
        on_epoch(rec)

    return forward
