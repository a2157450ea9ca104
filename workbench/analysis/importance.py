"""Which settings matter across many runs (W&B's parameter importance and parallel coordinates): the runs a filter
finds, or a sweep's trials, as rows of settings and a score. Importance is Optuna's fANOVA over the rows fed to an
in-memory study as trials; the parallel-coordinates view places every row on one axis per setting and one for
its score. The app's across-runs view, the sweep screen and `plot --importance` / `--parallel` draw from here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from workbench.format import percent
from workbench.paper.config import FIELDS

LEFT_OUT = ("device",)  # where a run trained, not what it learned with
LOG_SPAN = 10.0  # a size or a rate spanning this factor or more is placed on a log axis
LOG_FIELDS = {"lr", "hl", "c_hl", "batch_size", "pairs"}
IMPORTANCE_SEED = 0  # fANOVA's forest is random: one seed, so the same rows give the same bars


@dataclass(frozen=True)
class Row:
    """One run or trial: the settings it uses and its score (percent)."""

    name: str
    settings: dict
    score: float


@dataclass
class Rows:
    rows: list[Row]
    settings: list[str]  # those that differ among the rows, in FIELDS' order: the views' axes
    unshared: list[str] = field(default_factory=list)  # differ, but some row has no such setting
    not_done: int = 0

    @property
    def weighable(self) -> bool:
        """Two rows or more and a setting that differs: something for the views to show."""
        return len(self.rows) >= 2 and bool(self.settings)

    def left_out(self) -> str:
        """What the views leave out, said in words ('' when nothing): runs not done, settings not every run has."""
        parts = [f"{self.not_done} run{'s' if self.not_done != 1 else ''} not done"] if self.not_done else []
        if self.unshared:
            parts.append(f"{', '.join(label(k) for k in self.unshared)} (not every run has "
                         f"{'it' if len(self.unshared) == 1 else 'them'})")
        return "; ".join(parts)


def label(key: str) -> str:
    return FIELDS[key].label if key in FIELDS else key


def rows_of_runs(summaries: list) -> Rows:
    """Every done run with a score as a row of the settings its net uses (alpha only with the auxiliary loss)."""
    done = [s for s in summaries if s.status == "done" and s.mean is not None]
    rows = [Row(s.name, {k: v for k, v in s.config.to_dict().items() if k not in LEFT_OUT and s.config.uses(k)},
                percent(s.mean)) for s in done]
    return rows_of(rows, not_done=len(summaries) - len(done))


def rows_of(rows: list[Row], not_done: int = 0) -> Rows:
    """The rows and their axes: the settings that take two or more values. A setting some row lacks (alpha
    among runs of the basic net) cannot be weighed across all of them: it is named, not drawn."""
    keys = [k for k in FIELDS if any(k in r.settings for r in rows)]
    varying = [k for k in keys if len({r.settings[k] for r in rows if k in r.settings}) > 1]
    shared = [k for k in varying if all(k in r.settings for r in rows)]
    return Rows(rows, shared, [k for k in varying if k not in shared], not_done)


@dataclass
class Importance:
    settings: list[tuple[str, float]]  # (setting, its share of the score's variance), largest first
    rows: int
    why_none: str = ""  # why there are no bars ('' when there are)


def importances(rows: Rows) -> Importance:
    """Each setting's share of the variance of the score, by fANOVA (Optuna's default evaluator) fitted to the
    rows as the trials of a study; shares sum to 1. Two rows or fewer, no setting that differs, or one score for
    all: no bars, and why."""
    n = len(rows.rows)
    if n < 3:
        return Importance([], n, f"{n} done run{'s' if n != 1 else ''}: importance needs three or more")
    if not rows.settings:
        return Importance([], n, "no setting differs among these runs")
    if len({r.score for r in rows.rows}) == 1:
        return Importance([(k, 0.0) for k in rows.settings], n, "every run has the same score")
    import optuna
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spaces = {k: distribution(k, [r.settings[k] for r in rows.rows]) for k in rows.settings}
    study = optuna.create_study(direction="maximize")
    study.add_trials([create_trial(params={k: r.settings[k] for k in rows.settings}, distributions=spaces,
                                   value=r.score) for r in rows.rows])
    weights = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED), normalize=True)
    return Importance(sorted(((k, float(v)) for k, v in weights.items()), key=lambda kv: (-kv[1], kv[0])), n)


def distribution(key: str, values: list):
    """A setting's space as Optuna knows it: a switch or a choice is categorical, a number spans what the rows
    hold (on a log scale where a size or a rate spans a decade)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(values[0], (bool, str)):
        return CategoricalDistribution(sorted(set(values), key=str))
    low, high = min(values), max(values)
    log = is_log(key, low, high)
    if all(isinstance(v, int) for v in values):
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def is_log(key: str, low: float, high: float) -> bool:
    return key in LOG_FIELDS and low > 0 and high / low >= LOG_SPAN


# ------------------------------------------------------------------ parallel coordinates

@dataclass
class Axis:
    key: str  # a setting, or SCORE
    label: str
    ticks: list[tuple[float, str]]  # (position in 0..1, the value there)
    log: bool = False


SCORE = "score"


@dataclass
class Parallel:
    axes: list[Axis]
    lines: list[tuple[str, list[float], float]]  # (row name, its place on each axis in 0..1, its score)
    low: float  # the scores' range: what a line's colour spans
    high: float


def parallel(rows: Rows, score_label: str = "test accuracy %") -> Parallel:
    """Every row a line through its place on each setting's axis to its score's: a switch or a choice spread
    over its values in order, a number between the smallest and the largest (log where it spans a decade)."""
    axes, places = [], []
    for key in rows.settings:
        axis, place = place_on_axis(key, [r.settings[key] for r in rows.rows])
        axes.append(axis)
        places.append(place)
    scores = [r.score for r in rows.rows]
    axis, place = place_on_axis(SCORE, scores, score_label)
    axes.append(axis)
    places.append(place)
    lines = [(r.name, [p[i] for p in places], r.score) for i, r in enumerate(rows.rows)]
    lines.sort(key=lambda line: line[2])  # the best drawn last, on top
    return Parallel(axes, lines, min(scores, default=0.0), max(scores, default=0.0))


def place_on_axis(key: str, values: list, name: str | None = None) -> tuple[Axis, list[float]]:
    """An axis for one setting (or the score) and each value's place on it, from 0 (bottom) to 1 (top)."""
    name = name or label(key)
    if values and isinstance(values[0], (bool, str)):
        order = category_order(key, values)
        spot = {v: (i / (len(order) - 1) if len(order) > 1 else 0.5) for i, v in enumerate(order)}
        said = {v: ("on" if v else "off") if isinstance(v, bool) else str(v) for v in order}
        return Axis(key, name, [(spot[v], said[v]) for v in order]), [spot[v] for v in values]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    log = is_log(key, low, high)
    scale = math.log10 if log else float
    span = scale(high) - scale(low)
    shown = (lambda v: f"{v:.1f}") if key == SCORE else (lambda v: f"{v:.3g}")
    ticks = [(0.0, shown(low)), (1.0, shown(high))] if span else [(0.5, shown(low))]
    return Axis(key, name, ticks, log), [(scale(v) - scale(low)) / span if span else 0.5 for v in values]


def category_order(key: str, values: list) -> list:
    """A choice's values in the order the paper gives them (basic, fcn, cnn); a switch's off before on."""
    choices = FIELDS[key].choices if key in FIELDS else None
    present = set(values)
    if choices:
        return [c for c in choices if c in present]
    return sorted(present, key=str)
