"""The contract every engine honours: what it reports per epoch, how it is cancelled, what it returns."""

from __future__ import annotations

import dataclasses
import functools
import math
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy
import numpy as np
import torch

from workbench.engine.loss import chance_loss
from workbench.paper.config import RunConfig
from workbench.paper.verdict import says_first_le_second


class EngineError(RuntimeError):
    """A run cannot start (bad device, missing data): a message for the user, not a traceback."""


@dataclass
class EpochRecord:
    """One round's metrics after one epoch. `run` indexes the configs handed to the engine."""

    run: int
    round: int
    epoch: int  # 1-based
    train_loss: float  # mean loss of the epoch's batches
    train_acc: float  # accuracy on the epoch's batches as they were trained (dropout on)
    test_acc: float  # accuracy on the test pairs after the epoch (eval mode)
    digit_acc: float | None  # test-set digit accuracy of the subnets; None for the basic net
    lr: float
    seconds: float  # wall time of this epoch (shared by the rounds trained together)
    val_acc: float | None = None  # accuracy on the validation pairs, when a sweep's pruner asks for it each epoch


SAMPLE_PAIRS = 8  # pairs of each round kept as images for the data view
WRONG_KEPT = 24  # misclassified pairs of each round kept as images for the gallery


@dataclass
class Predictions:
    """A round's test predictions after its last epoch: what the errors views and the compare screen read."""

    prob: np.ndarray  # (n,) float32: P(first digit <= second)
    classes: np.ndarray  # (n, 2) int8: the two digits
    target: np.ndarray  # (n,) int8
    digit_pred: np.ndarray | None  # (n, 2) int8: the auxiliary heads' digits; None without the auxiliary loss
    image_pairs: np.ndarray  # (k,) int32: which pairs `images` shows (the first few, then misclassified ones)
    images: np.ndarray  # (k, 2, 14, 14) uint8: the pooled digits of those pairs


def predictions_of(logits: torch.Tensor, digit_logits: torch.Tensor | None, pairs_input: torch.Tensor,
                   target: torch.Tensor, classes: torch.Tensor, aux_loss: bool) -> Predictions:
    """Predictions from one round's test outputs: logits (n,), digit logits (n, 2, 10) or None."""
    prob = torch.sigmoid(logits.float()).cpu().numpy().astype(np.float32)
    target_np = target.cpu().numpy().astype(np.int8)
    wrong = np.flatnonzero(says_first_le_second(prob, probability=True).astype(np.int8) != target_np)
    shown = np.unique(np.concatenate([np.arange(min(SAMPLE_PAIRS, len(prob))), wrong[:WRONG_KEPT]])).astype(np.int32)
    images = pairs_input[torch.as_tensor(shown, device=pairs_input.device)].cpu()
    return Predictions(
        prob=prob, classes=classes.cpu().numpy().astype(np.int8), target=target_np,
        digit_pred=(digit_logits.argmax(-1).cpu().numpy().astype(np.int8)
                    if digit_logits is not None and aux_loss else None),
        image_pairs=shown, images=images.round().clamp(0, 255).to(torch.uint8).numpy())


def kept_weights(named) -> dict[str, np.ndarray]:
    """A replica's weights as a record keeps them: (name, tensor) pairs in the reference model's parameter order,
    copied to the CPU as float32 arrays (from a GPU too: they reopen anywhere)."""
    return {name: t.detach().to("cpu", torch.float32).numpy().copy(order="C") for name, t in named}  # one copy


@dataclass
class RoundResult:
    round: int
    seed: int
    status: str  # done, cancelled, failed
    test_acc: float | None = None
    train_acc: float | None = None
    digit_acc: float | None = None
    train_loss: float | None = None
    epochs: int = 0
    reason: str = ""
    val_acc: float | None = None  # on validation pairs from training digits, when asked for (sweeps)
    predictions: Predictions | None = field(default=None, repr=False, compare=False)  # saved beside the history, not in the summary
    # the trained network after its last epoch, by the reference model's parameter names (float32, on the CPU)
    weights: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)


@dataclass
class RunResult:
    status: str  # done, cancelled, failed
    config: RunConfig
    rounds: list[RoundResult]
    history: list[EpochRecord]
    data_source: str
    device: str
    engine: str
    seed: int
    wall_time: float
    reason: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    cost: dict[str, float] = field(default_factory=dict)  # what the process spent while it trained (training/)

    def test_accuracies(self) -> list[float]:
        return [r.test_acc for r in self.rounds if r.status == "done" and r.test_acc is not None]

    def mean_std(self) -> tuple[float | None, float | None]:
        """Mean and sample standard deviation of the finished rounds' test accuracy."""
        return mean_std(self.test_accuracies())

    def val_mean_std(self) -> tuple[float | None, float | None]:
        return mean_std([r.val_acc for r in self.rounds if r.status == "done" and r.val_acc is not None])


DIVERGED_FACTOR = 1000.0  # a final loss this many times a constant guess's: diverged (unscaled pixels can start at 20x)


def flag_divergence(config: RunConfig, result: RoundResult) -> None:
    """A finished round whose training ended far worse than guessing fails with the reason, so that a mean over
    rounds never silently averages it in."""
    chance = chance_loss(config)
    if result.status == "done" and result.train_loss is not None and result.train_loss > DIVERGED_FACTOR * chance:
        result.status = "failed"
        result.reason = (f"round {result.round}: diverged: training loss {result.train_loss:.3g} after epoch "
                         f"{result.epochs}, {result.train_loss / chance:.3g}x a constant guess's "
                         f"{chance:.3g} (try a lower learning rate)")


def digit_figure(config: RunConfig, digit_acc: float | None) -> float | None:
    """The subnets' digit accuracy, reported only where the auxiliary loss trained the digit heads: without it
    the heads are untrained and their 6-15 % means nothing."""
    return digit_acc if config.aux_loss else None


def merge_rounds(parts: list[RunResult]) -> RunResult:
    """One run's result from the stacks that trained disjoint sets of its rounds side by side."""
    if len(parts) == 1:
        return parts[0]
    statuses = {p.status for p in parts}
    status = "failed" if "failed" in statuses else ("cancelled" if "cancelled" in statuses else "done")
    return dataclasses.replace(
        parts[0], status=status, reason="; ".join(p.reason for p in parts if p.reason),
        rounds=sorted((r for p in parts for r in p.rounds), key=lambda r: r.round),
        history=sorted((h for p in parts for h in p.history), key=lambda h: (h.epoch, h.round)),
        wall_time=max(p.wall_time for p in parts), started_at=min(p.started_at for p in parts))


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


OnEpoch = Callable[[EpochRecord], None]
StopRun = Callable[[int], bool]  # whether a run (by the caller's index) stops after the epoch just trained


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class NeverCancel:
    def is_set(self) -> bool:
        return False


class StackCancel:
    """One stack's cancel: the call's own flag, or every run of the stack cancelled by itself, where the caller's
    flag knows runs (`is_cancelled(index)`, as the app's group does). A stack of cancelled runs then stops at once
    instead of training to its end unseen, and frees its core for the runs still wanted; a stack that holds one
    run still wanted trains on (a config's numbers never depend on its stack-mates)."""

    def __init__(self, cancel: CancelFlag, runs) -> None:
        self.cancel, self.runs = cancel, list(runs)
        self.of = getattr(cancel, "is_cancelled", None)

    def is_set(self) -> bool:
        return self.cancel.is_set() or (self.of is not None and all(self.of(i) for i in self.runs))


class SharedCancel:
    """The cancel a worker process sees: the call's stop event and, per run, whether it was cancelled by itself
    (flags the parent's dispatcher copies from its own flag)."""

    def __init__(self, stop, cancelled) -> None:
        self.stop, self.cancelled = stop, cancelled

    def is_set(self) -> bool:
        return self.stop.is_set()

    def is_cancelled(self, index: int) -> bool:
        return bool(self.cancelled[index])


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when available; cuda where there is none is an EngineError with the reason."""
    if name == "cpu":
        return torch.device("cpu")
    if name in ("auto", "cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if name == "auto":
            return torch.device("cpu")
        raise EngineError(f"device: cuda is not available ({cuda_unavailable_reason()})")
    raise EngineError(f"device: unknown device {name!r} (auto, cpu, cuda)")


def cuda_unavailable_reason() -> str:
    if torch.version.cuda is None:
        return "this torch build has no CUDA support"
    try:
        count = torch.cuda.device_count()
    except Exception as exc:  # driver problems surface here
        return f"CUDA driver error: {exc}"
    return "no CUDA device found" if count == 0 else "CUDA could not be initialised"


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()})"


def library_versions() -> dict[str, str]:
    """What a run's numbers depend on beyond its config and seed: the libraries, and the CPU kind and the
    instruction set torch computes with (another CPU kind rounds differently, so the numbers differ there)."""
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "cpu": cpu_model(), "isa": str(torch.backends.cpu.get_cpu_capability())}


@functools.cache
def cpu_model() -> str:
    """The CPU's model name, as the kernel reports it (platform.processor() says only 'x86_64' on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return " ".join(line.split(":", 1)[1].split())[:120]
    except OSError:
        pass
    return platform.processor() or platform.machine()


def finite(value: float) -> bool:
    return value is not None and math.isfinite(value)
