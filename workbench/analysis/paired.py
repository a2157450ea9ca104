"""How two runs differ: the paired comparison over rounds (runs of one seed see the same pairs in round r), its
t-interval, p and rounds won, and Holm's correction over many pairs. Numpy and scipy only."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np


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
    a_id: str = ""  # the records' ids: two runs of one name are told apart in an export
    b_id: str = ""


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
    Otherwise, Welch's unpaired test on the two sets of rounds, saying why. The comparison names both records."""
    return replace(_compared(a, b), a_id=str(getattr(a, "id", "")), b_id=str(getattr(b, "id", "")))


def _compared(a, b) -> Comparison:
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
