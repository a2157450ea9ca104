"""The paper reproduced from the runs a filter finds (`digit-workbench report`): its tables, ours beside the
paper's, and its questions (does weight sharing help, does the auxiliary loss, do the two add up) answered for each
subnet with paired estimates over rounds. Data only: export/reproduction.py writes it as HTML or Markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from workbench.analysis.paired import compare_runs, protocol_difference, round_scores, t_quantile
from workbench.format import percent
from workbench.paper.presets import PaperScore, Preset

TABLES = {"text": "The basic net (the paper's text)", "II": "Table II: weight sharing and the auxiliary loss",
          "III": "Table III: the FCN after its grid search", "IV": "Table IV: the CNN after its grid search"}
SUBNETS = {"fcn": "fully connected subnet (FCN)", "cnn": "convolutional subnet (CNN)"}


@dataclass
class TableRow:
    table: str
    row: str  # the paper's name for the row
    preset: str
    title: str
    paper: PaperScore
    run: object | None  # the run that answers it (records.store.RunSummary), None when there is none

    @property
    def difference(self) -> float | None:
        """Ours minus the paper's, in points."""
        if self.run is None or self.run.mean is None:
            return None
        return percent(self.run.mean - self.paper.score)

    @property
    def missing(self) -> str:
        """The command that produces the row's run ('' when it has one)."""
        return "" if self.run is not None else f"digit-workbench run --preset {self.preset}"


@dataclass
class Estimate:
    """One paired answer in points over rounds: its mean, 95 % t interval and p; or why there is none."""

    what: str  # "ws − plain", "(ws-aux − aux) − (ws − plain)"
    n: int = 0
    mean: float | None = None
    ci: tuple[float, float] | None = None
    p: float | None = None
    why: str = ""  # empty when estimated

    @classmethod
    def of(cls, what: str, values: list[float]) -> Estimate:
        """The mean of per-round values with its t interval and the one-sample t-test against 0."""
        from scipy import stats

        d = np.array(values, dtype=float)
        n = len(d)
        if n < 2:
            return cls(what, n, why="fewer than two rounds in common")
        mean, sd = float(d.mean()), float(d.std(ddof=1))
        if sd == 0.0:
            return cls(what, n, mean, (mean, mean), 1.0 if mean == 0.0 else 0.0)
        se = sd / math.sqrt(n)
        half = t_quantile(n - 1) * se
        return cls(what, n, mean, (mean - half, mean + half), float(2 * stats.t.sf(abs(mean / se), n - 1)))


@dataclass
class Question:
    subnet: str
    asked: str  # "Does weight sharing help?"
    estimates: list[Estimate] = field(default_factory=list)


@dataclass
class Beyond:
    """A preset beyond the paper against the paper's best for its subnet: both our runs and the paper's score."""

    preset: str
    title: str
    best: TableRow  # the paper's best row for the subnet (Table III or IV)
    run: object | None
    against_ours: Estimate  # beyond − our run of the paper's best

    @property
    def over_paper(self) -> float | None:
        """Ours minus the paper's best score, in points."""
        return None if self.run is None or self.run.mean is None else percent(self.run.mean - self.best.paper.score)


@dataclass
class Reproduction:
    rows: list[TableRow]
    questions: list[Question]
    runs: list  # the runs the report drew on, in the tables' order
    beyond: list[Beyond] = field(default_factory=list)

    def table(self, name: str) -> list[TableRow]:
        return [r for r in self.rows if r.table == name]

    @property
    def missing(self) -> list[TableRow]:
        return [r for r in self.rows if r.run is None]


def latest_by_preset(summaries: list, presets: dict[str, Preset]) -> dict[str, object]:
    """For each preset, the latest finished run that is still its row of the paper (an edited config is not); a
    preset beyond the paper, its latest run of that config."""
    found: dict[str, object] = {}
    for s in sorted(summaries, key=lambda s: (s.started_at, s.id)):
        preset = presets.get(s.preset or "")
        if preset is None or s.status != "done" or s.mean is None or not preset.is_row(s.config):
            continue
        found[preset.name] = s
    return found


def reproduction(summaries: list, presets: dict[str, Preset]) -> Reproduction:
    """The paper's rows with the runs that answer them, and its questions for each subnet."""
    latest = latest_by_preset(summaries, presets)
    rows = [TableRow(p.paper.table, p.paper.row, p.name, p.title, p.paper, latest.get(p.name))
            for p in presets.values() if p.paper is not None and p.paper.table in TABLES]
    rows.sort(key=lambda r: list(TABLES).index(r.table))  # stable: the paper's order within a table
    questions = [q for subnet in SUBNETS for q in questions_for(subnet, latest)]
    beyond = beyond_the_paper(rows, presets, latest)
    drawn = [r.run for r in rows if r.run is not None] + [b.run for b in beyond if b.run is not None]
    return Reproduction(rows, questions, drawn, beyond)


def beyond_the_paper(rows: list[TableRow], presets: dict[str, Preset], latest: dict[str, object]) -> list[Beyond]:
    """Each beyond-* preset against the paper's best row of its subnet (the last row of Table III or IV)."""
    best = {r.run.config.subnet if r.run else presets[r.preset].config.subnet: r
            for r in rows if r.table in ("III", "IV")}
    out = []
    for name, preset in presets.items():
        if not name.startswith("beyond-") or preset.config.subnet not in best:
            continue
        row, run = best[preset.config.subnet], latest.get(name)
        what = f"{name} − {row.preset}"
        if run is None or row.run is None:
            estimate = Estimate(what, why="no run of " + " or ".join(n for n, r in ((name, run), (row.preset, row.run))
                                                                      if r is None))
        else:
            c = compare_runs(run, row.run)
            estimate = (Estimate(what, c.n, c.mean_diff, c.ci, c.p) if c.paired
                        else Estimate(what, c.n, c.mean_diff, c.ci, c.p, f"unpaired (Welch): {c.why_unpaired}"))
        out.append(Beyond(name, preset.title, row, run, estimate))
    return out


def questions_for(subnet: str, latest: dict[str, object]) -> list[Question]:
    """The paper's three questions for one subnet, from its four Table II rows."""
    four = {tag: latest.get(f"table2-{subnet}-{tag}") for tag in ("plain", "aux", "ws", "ws-aux")}
    ws = Question(subnet, "Does weight sharing help?",
                  [difference(four, "ws", "plain"), difference(four, "ws-aux", "aux")])
    aux = Question(subnet, "Does the auxiliary loss help?",
                   [difference(four, "aux", "plain"), difference(four, "ws-aux", "ws")])
    both = Question(subnet, "Do the two add up?", [interaction(four)])
    return [ws, aux, both]


def difference(four: dict, a: str, b: str) -> Estimate:
    what = f"{a} − {b}"
    absent = [t for t in (a, b) if four[t] is None]
    if absent:
        return Estimate(what, why="no run of " + " or ".join(absent))
    c = compare_runs(four[a], four[b])
    if not c.paired:
        return Estimate(what, c.n, why=f"not paired: {c.why_unpaired}")
    return Estimate(what, c.n, c.mean_diff, c.ci, c.p)


def interaction(four: dict) -> Estimate:
    """(ws-aux − aux) − (ws − plain) round by round: what weight sharing adds with the auxiliary loss beyond what
    it adds without; 0 when the two effects simply add up."""
    what = "(ws-aux − aux) − (ws − plain)"
    absent = [t for t, s in four.items() if s is None]
    if absent:
        return Estimate(what, why="no run of " + " or ".join(absent))
    runs = list(four.values())
    why = next((protocol_difference(runs[0], other) for other in runs[1:] if protocol_difference(runs[0], other)), "")
    if why:
        return Estimate(what, why=f"not paired: {why}")
    scores = {t: round_scores(s) for t, s in four.items()}
    common = sorted(set.intersection(*(set(v) for v in scores.values())))
    values = [(scores["ws-aux"][r] - scores["aux"][r]) - (scores["ws"][r] - scores["plain"][r]) for r in common]
    return Estimate.of(what, values)

