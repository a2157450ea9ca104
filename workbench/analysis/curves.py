"""A run's curves over epochs (mean and spread over rounds) read from its history, and the strip plots' fixed
jitter. Numpy only."""

from __future__ import annotations

import math

import numpy as np


class Curves:
    """Per-round series by epoch of a run's history (epoch records or history.csv rows), and their mean and
    spread over rounds: what the live view, the compare screen and the report figure draw."""

    def __init__(self) -> None:
        self.loss: dict[int, dict[int, float]] = {}
        self.train_acc: dict[int, dict[int, float]] = {}
        self.test_acc: dict[int, dict[int, float]] = {}
        self.digit_acc: dict[int, dict[int, float]] = {}
        self.seconds: dict[int, dict[int, float]] = {}  # each epoch's wall time, as the engine clocked it

    def add(self, rec) -> None:
        get = rec.get if isinstance(rec, dict) else lambda k: getattr(rec, k)
        r, e = int(get("round")), int(get("epoch"))
        self.loss.setdefault(r, {})[e] = get("train_loss")
        self.train_acc.setdefault(r, {})[e] = get("train_acc")
        self.test_acc.setdefault(r, {})[e] = get("test_acc")
        if get("digit_acc") is not None:
            self.digit_acc.setdefault(r, {})[e] = get("digit_acc")
        seconds = get("seconds") if not isinstance(rec, dict) or "seconds" in rec else None
        if seconds is not None and math.isfinite(float(seconds)):
            self.seconds.setdefault(r, {})[e] = float(seconds)

    @staticmethod
    def mean(series: dict[int, dict[int, float]]) -> tuple[list[int], list[float]]:
        epochs, means, _ = Curves.mean_std(series)
        return epochs, means

    @staticmethod
    def mean_std(series: dict[int, dict[int, float]]) -> tuple[list[int], list[float], list[float]]:
        """Per epoch, the mean over the rounds that reached it and their spread (population std; 0 for one)."""
        epochs = sorted({e for by_epoch in series.values() for e in by_epoch})
        means, stds = [], []
        for e in epochs:
            values = np.array([s[e] for s in series.values() if e in s and s[e] is not None], dtype=float)
            means.append(float(values.mean()) if values.size else float("nan"))
            stds.append(float(values.std()) if values.size > 1 else 0.0)
        return epochs, means, stds

    def time_axis(self, total: float | None = None) -> dict[int, float]:
        """Per epoch, the seconds trained by its end: each round's epoch times summed up to it, averaged over the
        rounds that reached it. With `total` (a record's train time, its share of a stack's clock), rescaled so the
        last epoch lands there: then the axis reads as the train-time column, whichever engine ran it. Epochs
        without a clocked time (records from before it was kept) have no place on it."""
        elapsed: dict[int, list[float]] = {}
        for by_epoch in self.seconds.values():
            clock = 0.0
            for e in sorted(by_epoch):
                clock += by_epoch[e]
                elapsed.setdefault(e, []).append(clock)
        axis = {e: float(np.mean(times)) for e, times in sorted(elapsed.items())}
        end = axis[max(axis)] if axis else 0.0
        if total and end > 0:
            axis = {e: t * total / end for e, t in axis.items()}
        return axis

    def __len__(self) -> int:
        return sum(len(s) for s in self.loss.values())

    # a history column and the series that holds it
    COLUMNS = {"test_acc": "test_acc", "train_loss": "loss", "train_acc": "train_acc", "digit_acc": "digit_acc"}

    def points(self):
        """Every point an export keeps, as (history column, "mean" | "std" | round, epoch, value): per series the
        mean and spread over rounds epoch by epoch, then each round's own values; a series a run lacks (digit
        accuracy without the auxiliary loss) yields nothing."""
        for column, attr in self.COLUMNS.items():
            series = getattr(self, attr)
            if not series:
                continue
            for epoch, mean, std in zip(*self.mean_std(series)):
                yield column, "mean", epoch, mean
                yield column, "std", epoch, std
            for round_index, by_epoch in sorted(series.items()):
                for epoch, value in sorted(by_epoch.items()):
                    if value is not None:
                        yield column, round_index, epoch, value

    @staticmethod
    def smoothed(series: dict[int, dict[int, float]], factor: float) -> dict[int, dict[int, float]]:
        """Each round's series as an exponential moving average over its epochs (TensorBoard's smoothing):
        s(e) = factor * s(e - 1) + (1 - factor) * x(e), starting at the first value; 0 leaves it as it is."""
        if factor <= 0:
            return series
        out: dict[int, dict[int, float]] = {}
        for r, by_epoch in series.items():
            level, smooth = None, {}
            for e in sorted(by_epoch):
                x = by_epoch[e]
                if x is None:
                    continue
                level = x if level is None else factor * level + (1 - factor) * x
                smooth[e] = level
            out[r] = smooth
        return out

    @classmethod
    def of(cls, history) -> Curves:
        curves = cls()
        for rec in history:
            curves.add(rec)
        return curves


# ------------------------------------------------------------------ what a run gets wrong

def strip_jitter(strips: list[list[float]], width: float) -> list[np.ndarray]:
    """Horizontal offsets in [-width, width] for every dot of each run's strip of round scores: a fixed draw,
    so a screen and a figure of the same runs show the same picture every time."""
    rng = np.random.default_rng(0)
    return [rng.uniform(-width, width, len(scores)) for scores in strips]


