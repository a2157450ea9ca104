"""What a run gets wrong and how two runs differ: test predictions read back from a run's record, the error
heatmap by digit pair, the auxiliary heads' confusion, and the paired comparison of two runs over rounds.
Numpy and scipy only: the app and the CLI read these without torch."""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .fsutil import open_input
from .runs import PREDICTIONS_FILE

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
        return (self.prob > 0.5).astype(np.int8)

    @property
    def wrong(self) -> np.ndarray:
        return self.predicted != self.target

    def image_of(self, round_: int, pair: int) -> np.ndarray | None:
        hit = np.flatnonzero((self.image_round == round_) & (self.image_pair == pair))
        return self.images[hit[0]] if len(hit) else None


def load_predictions(run_dir: Path | None) -> RunPredictions | None:
    """A run's predictions, or None when it has none (an older record, a failed or cancelled run)."""
    if run_dir is None or not (Path(run_dir) / PREDICTIONS_FILE).exists():
        return None
    path = Path(run_dir) / PREDICTIONS_FILE
    try:
        with open_input(path, PREDICTIONS_LIMIT) as f, np.load(f, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        k, n = arrays["prob"].shape
        preds = RunPredictions(
            rounds=arrays["round"].astype(int), prob=arrays["prob"].astype(np.float32),
            classes=arrays["classes"].astype(int), target=arrays["target"].astype(int),
            digit_pred=arrays["digit_pred"].astype(int) if "digit_pred" in arrays else None,
            image_round=arrays["image_round"].astype(int), image_pair=arrays["image_pair"].astype(int),
            images=arrays["images"])
    except (OSError, KeyError, ValueError, TypeError, EOFError, IndexError, zipfile.BadZipFile) as exc:
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

class Curves:
    """Per-round series by epoch of a run's history (epoch records or history.csv rows), and their mean and
    spread over rounds: what the live view, the compare screen and the report figure draw."""

    def __init__(self) -> None:
        self.loss: dict[int, dict[int, float]] = {}
        self.train_acc: dict[int, dict[int, float]] = {}
        self.test_acc: dict[int, dict[int, float]] = {}
        self.digit_acc: dict[int, dict[int, float]] = {}

    def add(self, rec) -> None:
        get = rec.get if isinstance(rec, dict) else lambda k: getattr(rec, k)
        r, e = int(get("round")), int(get("epoch"))
        self.loss.setdefault(r, {})[e] = get("train_loss")
        self.train_acc.setdefault(r, {})[e] = get("train_acc")
        self.test_acc.setdefault(r, {})[e] = get("test_acc")
        if get("digit_acc") is not None:
            self.digit_acc.setdefault(r, {})[e] = get("digit_acc")

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

@dataclass
class Comparison:
    """Run a minus run b, in accuracy points over rounds."""

    a: str
    b: str
    paired: bool
    why_unpaired: str  # empty when paired
    n: int  # paired rounds (paired), or rounds of a and b (unpaired: n_a + n_b)
    mean_diff: float | None
    ci: tuple[float, float] | None
    p: float | None
    wins: int | None  # rounds a beat b (paired only)
    ties: int | None
    p_holm: float | None = None  # p adjusted by Holm's method for every pair tested beside it (None: tested alone)


def protocol_difference(a, b) -> str:
    """Why rounds of two runs do not see the same pairs, or "" when round r of each sees the same ones."""
    if a.data_source != b.data_source:
        return "different digits"
    if a.config.seed != b.config.seed:
        return "different seeds"
    if a.config.pairs != b.config.pairs:
        return "different numbers of pairs"
    return ""


def round_scores(summary) -> dict[int, float]:
    """Test accuracy of each finished round, in points, by round number."""
    scores = {}
    for r in summary.rounds:
        if r.get("status") == "done" and isinstance(r.get("test_acc"), (int, float)):
            scores[int(r["round"])] = 100.0 * float(r["test_acc"])
    return scores


def compare_runs(a, b) -> Comparison:
    """Round r of two runs with the same seed, digits and pair count trains and tests on the same pairs, so the
    per-round differences are paired: their mean, a 95 % t interval, the paired t-test and the rounds won.
    Otherwise, Welch's unpaired test on the two sets of rounds, saying why."""
    from scipy import stats

    sa, sb = round_scores(a), round_scores(b)
    why = protocol_difference(a, b)
    common = sorted(set(sa) & set(sb))
    if not why and len(common) < 2:
        why = "fewer than two rounds in common"
    if not why:
        d = np.array([sa[r] - sb[r] for r in common])
        n = len(d)
        mean, sd = float(d.mean()), float(d.std(ddof=1))
        if sd == 0.0:
            ci, p = (mean, mean), (1.0 if mean == 0.0 else 0.0)
        else:  # the paired t-test: t = mean / (sd / sqrt(n)) with n - 1 degrees of freedom
            se = sd / math.sqrt(n)
            half = t_quantile(n - 1) * se
            ci = (mean - half, mean + half)
            p = float(2 * stats.t.sf(abs(mean / se), n - 1))
        return Comparison(a.name, b.name, True, "", n, mean, ci, p, int((d > 0).sum()), int((d == 0).sum()))
    xa, xb = np.array(list(sa.values())), np.array(list(sb.values()))
    if len(xa) < 2 or len(xb) < 2:
        return Comparison(a.name, b.name, False, why, len(xa) + len(xb), None, None, None, None, None)
    mean = float(xa.mean() - xb.mean())
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Comparison(a.name, b.name, False, why, len(xa) + len(xb), mean, (mean, mean),
                          1.0 if mean == 0.0 else 0.0, None, None)
    df = (va + vb) ** 2 / (va ** 2 / (len(xa) - 1) + vb ** 2 / (len(xb) - 1))  # Welch-Satterthwaite
    half = float(stats.t.ppf(0.975, df)) * se
    p = float(2 * stats.t.sf(abs(mean / se), df))
    return Comparison(a.name, b.name, False, why, len(xa) + len(xb), mean, (mean - half, mean + half), p, None, None)


@lru_cache(maxsize=None)
def t_quantile(df: int) -> float:
    """Student's t at 97.5 %: the half-width of a 95 % interval in standard errors."""
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def all_pairs(summaries: list) -> list[Comparison]:
    """Every pair of runs, each later run against each earlier one (a - b with a the later); with more than one
    pair tested, each also carries its Holm-adjusted p."""
    from dataclasses import replace

    pairs = [compare_runs(summaries[j], summaries[i]) for i in range(len(summaries))
             for j in range(i + 1, len(summaries))]
    if sum(c.p is not None for c in pairs) < 2:
        return pairs
    return [replace(c, p_holm=adjusted) for c, adjusted in zip(pairs, holm([c.p for c in pairs]))]


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment: the i-th smallest of m p values times (m - i + 1), never below the one before
    it, at most 1; a missing p (no test) is neither adjusted nor counted."""
    tested = sorted((p, k) for k, p in enumerate(p_values) if p is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for i, (p, k) in enumerate(tested):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out
