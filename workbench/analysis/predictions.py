"""What a run gets wrong: its test predictions read back from its record, the error heatmap by digit pair, the
auxiliary heads' confusion, misclassified and sample pairs. Numpy only: the app and the CLI read these without
torch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.paper.verdict import says_first_le_second
from workbench.records.layout import PREDICTIONS_FILE
from workbench.records.weights import member, open_archive

PREDICTIONS_LIMIT = 256 << 20  # 100 rounds of 30,000 pairs is under 50 MB



class PredictionsUnreadable(ValueError):
    """A predictions file that is there but cannot be read: the message names it."""


@dataclass
class RunPredictions:
    """A run's test predictions: per kept round (k) and test pair (n)."""

    rounds: np.ndarray  # (k,) round numbers
    prob: np.ndarray  # (k, n) P(first <= second)
    classes: np.ndarray  # (k, n, 2)
    target: np.ndarray  # (k, n)
    digit_pred: np.ndarray | None  # (k, n, 2) the auxiliary heads' digits
    image_round: np.ndarray  # (m,) round of each kept image pair
    image_pair: np.ndarray  # (m,) pair index of each kept image pair
    images: np.ndarray  # (m, 2, 14, 14) uint8

    @property
    def predicted(self) -> np.ndarray:
        return says_first_le_second(self.prob, probability=True).astype(np.int8)

    @property
    def wrong(self) -> np.ndarray:
        return self.predicted != self.target

    def image_of(self, round_: int, pair: int) -> np.ndarray | None:
        hit = np.flatnonzero((self.image_round == round_) & (self.image_pair == pair))
        return self.images[hit[0]] if len(hit) else None


def load_predictions(run_dir: Path | None) -> RunPredictions | None:
    """A run's predictions, or None when it has none (an older record, a failed or cancelled run)."""
    if run_dir is None or not os.path.lexists(Path(run_dir) / PREDICTIONS_FILE):
        return None
    path = Path(run_dir) / PREDICTIONS_FILE
    try:
        with open_archive(path, PREDICTIONS_LIMIT, PredictionsUnreadable) as data:
            # each array read only once its header says it is numbers that fit (npz members may be compressed)
            arrays = {k: member(data, k, path, PREDICTIONS_LIMIT, PredictionsUnreadable) for k in data.files}
        k, n = arrays["prob"].shape
        preds = RunPredictions(
            rounds=arrays["round"].astype(int), prob=arrays["prob"].astype(np.float32),
            classes=arrays["classes"].astype(int), target=arrays["target"].astype(int),
            digit_pred=arrays["digit_pred"].astype(int) if "digit_pred" in arrays else None,
            image_round=arrays["image_round"].astype(int), image_pair=arrays["image_pair"].astype(int),
            images=arrays["images"])
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        if isinstance(exc, PredictionsUnreadable):
            raise
        raise PredictionsUnreadable(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    shapes_ok = (preds.rounds.shape == (k,) and preds.classes.shape == (k, n, 2) and preds.target.shape == (k, n)
                 and (preds.digit_pred is None or preds.digit_pred.shape == (k, n, 2))
                 and preds.images.shape[1:] == (2, 14, 14) and len(preds.images) == len(preds.image_pair)
                 and ((preds.classes >= 0) & (preds.classes <= 9)).all()
                 and (preds.digit_pred is None or ((preds.digit_pred >= 0) & (preds.digit_pred <= 9)).all())
                 and np.isin(preds.target, (0, 1)).all()
                 and np.isfinite(preds.prob).all() and ((preds.prob >= 0) & (preds.prob <= 1)).all())
    if not shapes_ok:
        raise PredictionsUnreadable(f"{path}: arrays of the wrong shape, or digits, targets or probabilities "
                                    "out of range")
    return preds


# ------------------------------------------------------------------ curves over rounds

def error_grid(preds: RunPredictions) -> tuple[np.ndarray, np.ndarray]:
    """(errors, counts), each 10 x 10 by (first digit, second digit), over every kept round's test pairs."""
    first, second = preds.classes[..., 0].ravel(), preds.classes[..., 1].ravel()
    cell = first * 10 + second
    counts = np.bincount(cell, minlength=100).reshape(10, 10)
    errors = np.bincount(cell, weights=preds.wrong.ravel().astype(float), minlength=100).reshape(10, 10)
    return errors.astype(int), counts


def error_rate(errors: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Errors over counts, NaN where a digit pair never occurred."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, errors / np.maximum(counts, 1), np.nan)


def digit_confusion(preds: RunPredictions) -> np.ndarray | None:
    """10 x 10 counts of (true digit, the auxiliary heads' digit), both images of every pair; None without heads."""
    if preds.digit_pred is None:
        return None
    cell = preds.classes.ravel() * 10 + preds.digit_pred.ravel()
    return np.bincount(cell, minlength=100).reshape(10, 10)


def per_digit_accuracy(confusion: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(confusion) / confusion.sum(1)


@dataclass
class PairView:
    round: int
    pair: int
    digits: tuple[int, int]
    target: int
    prob: float
    images: np.ndarray | None  # (2, 14, 14) uint8


def misclassified(preds: RunPredictions, limit: int = 24) -> list[PairView]:
    """Misclassified test pairs whose images were kept, the most confidently wrong first."""
    views = []
    for i, r in enumerate(preds.rounds):
        for j in np.flatnonzero(preds.wrong[i]):
            image = preds.image_of(r, j)
            if image is not None:
                views.append(PairView(int(r), int(j), (int(preds.classes[i, j, 0]), int(preds.classes[i, j, 1])),
                                      int(preds.target[i, j]), float(preds.prob[i, j]), image))
    views.sort(key=lambda v: -abs(v.prob - 0.5))
    return views[:limit]


def samples(preds: RunPredictions, round_index: int = 0, limit: int = 8) -> list[PairView]:
    """The first test pairs of a kept round (by position), with their images."""
    i = min(max(round_index, 0), len(preds.rounds) - 1)
    r = int(preds.rounds[i])
    views = []
    for j in range(min(limit, preds.prob.shape[1])):
        image = preds.image_of(r, j)
        if image is not None:
            views.append(PairView(r, j, (int(preds.classes[i, j, 0]), int(preds.classes[i, j, 1])),
                                  int(preds.target[i, j]), float(preds.prob[i, j]), image))
    return views


# ------------------------------------------------------------------ paired comparison of two runs

