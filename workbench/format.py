"""How every number and cell reads, the same in the command's tables, the app's screens and the CSV files:
percentages, mean ± std, settings and sweep parameters (one precision), comparison rows, sweep trial and stage
cells. Torch-free, rich-free plain text."""

from __future__ import annotations

import os
import time


def plain(text) -> str:
    """A name or any text a user or a file gave, as one safe line: every control character (escape sequences,
    bell, line breaks) shown as its escape, so nothing reaches a terminal as a command. Markup is the drawing
    layer's to escape (tui/text.py, cli/report.py, analysis/figures.py)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def counted(n: int, noun: str) -> str:
    """'1 run', '2 runs'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


STATUS_STYLE = {"done": "green", "cancelled": "yellow", "failed": "red", "running": "cyan", "queued": "dim"}


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as percent: 0.873 -> '87.3'; None -> '—'."""
    return "—" if value is None else f"{value * 100:.{digits}f}"


def percent(fractions):
    """Fractions (a number or an array) as percent, for a plot's or a heatmap's scale."""
    return fractions * 100


def mean_std_label(mean: float | None, std: float | None) -> str:
    """Mean ± std over rounds, in percent."""
    if mean is None:
        return "—"
    return f"{mean * 100:.1f} ± {std * 100:.1f}" if std is not None else f"{mean * 100:.1f}"


def signed_points(diff: float | None) -> str:
    """A difference of fractions in accuracy points, signed."""
    return "—" if diff is None else f"{diff * 100:+.1f}"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def setting(value) -> str:
    """A config value as a person reads it, in a form, a table or a sweep's parameters: switches on/off, numbers
    to four significant digits."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class StepRate:
    """Time left from the measured rate of epochs since the first one ended: start-up (digits, worker processes,
    the first step's allocations) is not a rate, so it never inflates the estimate."""

    def __init__(self, total: int):
        self.total = total
        self.first: tuple[float, int] | None = None  # (time, epochs done) at the first report
        self.latest: tuple[float, int] | None = None

    def update(self, done: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.first is None:
            self.first = (now, done)
        self.latest = (now, done)

    def seconds_left(self) -> float | None:
        if self.first is None or self.latest is None or self.latest[1] <= self.first[1]:
            return None
        (t0, d0), (t1, d1) = self.first, self.latest
        rate = (d1 - d0) / max(t1 - t0, 1e-9)  # epochs per second
        return max(self.total - d1, 0) / rate

    def left_text(self) -> str:
        """What is left, as the progress bar and the live view say it: 'measuring…' until a rate is known."""
        left = self.seconds_left()
        return "left: measuring…" if left is None else f"left ~{duration(left)}"


def mark(on: bool) -> str:
    """A switch in a table cell."""
    return "✓" if on else "·"


def run_name(preset_name: str, changes: list[tuple[str, object]]) -> str:
    """A run's default name: its preset's, then what differs from it as (short label, value) in the form's order
    ('table2-cnn-ws-aux α 0.2'), so three edits of one preset read as three runs."""
    return " ".join([preset_name, *(f"{label} {setting(value)}".strip() for label, value in changes)])


SEPARATORS = " -_/"


def short_names(names: list[str], width: int) -> list[str]:
    """Names for a narrow place (a plot's ticks): the start they all share dropped where it ends a word and leaves
    them apart, then each cut at a word's end with "…" where it is still too long; mid-word only for one long
    word."""
    width = max(width, 2)
    prefix = common_word_prefix(names)
    rest = [n[len(prefix):] for n in names]
    if prefix and all(rest) and len(set(rest)) == len(set(names)):
        names = rest
    out = [_cut(name, width) for name in names]
    # names that differ but read the same once cut ("aux α…" twice) show where they differ instead ("…α 0.2")
    same: dict[str, list[int]] = {}
    for i, short in enumerate(out):
        same.setdefault(short, []).append(i)
    for group in same.values():
        if len({names[i] for i in group}) < 2:
            continue
        differ = len(os.path.commonprefix([names[i] for i in group]))
        start = _word_start(names[group[0]], differ)
        if start > 0 and names[group[0]][start - 1] == " ":  # a value keeps its setting: "α 0.2", never "0.2"
            start = _word_start(names[group[0]], start - 1)
        if start > 0:
            for i in group:
                out[i] = "…" + _cut(names[i][start:], width - 1)
    return out


def _cut(name: str, width: int) -> str:
    """A name cut at a word's end, with "…", to fit `width` (mid-word only for one long word)."""
    if len(name) <= width:
        return name
    cut = max((i for i, ch in enumerate(name[:width]) if ch in SEPARATORS), default=0)
    return (name[:cut] if cut > 0 else name[:width - 1]).rstrip(SEPARATORS) + "…"


def _word_start(name: str, at: int) -> int:
    """Where the word holding position `at` starts (after the separator before it)."""
    return max((i + 1 for i, ch in enumerate(name[:at]) if ch in SEPARATORS), default=0)


def common_word_prefix(names: list[str]) -> str:
    if len(names) < 2:
        return ""
    shared = names[0]
    for name in names[1:]:
        while not name.startswith(shared):
            shared = shared[:-1]
    # at a hyphen, never a space: a space parts a setting from its value ("α 0.2"), which stay together
    end = max((i + 1 for i, ch in enumerate(shared) if ch in "-_/"), default=0)
    return shared[:end]


def config_name(subnet: str, weight_sharing: bool, aux_loss: bool) -> str:
    """A run's default name without a preset: 'fcn WS aux'."""
    return f"{subnet}{' WS' if weight_sharing else ''}{' aux' if aux_loss else ''}"


def paper_label(summary) -> str:
    """The paper's score beside a run; 'edited' for a run whose config is no longer its preset's row; '—' where
    there is no row (a preset beyond the paper, no preset)."""
    if summary.paper is not None:
        return summary.paper.label()
    edited = getattr(summary, "edited", None)
    if edited is None:  # a record from before 'edited' was kept: a preset without a score was an edit
        edited = bool(summary.preset)
    return "edited" if edited else "—"


def alpha_text(config) -> str:
    """alpha as a table shows it: '—' without the auxiliary loss, where it weighs nothing."""
    return f"{config.alpha:g}" if config.aux_loss else "—"


def train_time(seconds: float | None) -> str:
    """A run's share of the training time; '—' where none was kept."""
    return duration(seconds) if seconds else "—"


def result_cells(summary) -> dict[str, str]:
    """One row of a results table, the same in the command's table and the app's (which adds its own columns)."""
    c = summary.config
    return {"name": summary.name, "net": c.subnet, "ws": mark(c.weight_sharing), "aux": mark(c.aux_loss),
            "alpha": alpha_text(c), "ours": mean_std_label(summary.mean, summary.std), "paper": paper_label(summary),
            "diff": signed_points(summary.difference), "train time": train_time(summary.wall_time),
            "status": summary.status}


def score_line(summary, detail: bool = False) -> str:
    """A finished run's score beside the paper's: 'test 86.5 ± 1.2 % · paper 85.8 %'; with `detail`, over how many
    rounds and from which table."""
    line = f"test {'accuracy ' if detail else ''}{mean_std_label(summary.mean, summary.std)} %"
    line += f" over {len(summary.round_acc)} rounds" if detail and summary.round_acc else ""
    reached = [r for r in getattr(summary, "rounds", []) if r.get("test_acc") is not None] if summary.mean is None else []
    if reached:  # a cancelled run has no final score, but its rounds' last epochs were measured
        accs = [float(r["test_acc"]) for r in reached]
        mean = sum(accs) / len(accs)
        std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5 if len(accs) > 1 else None
        epoch = max(int(r.get("epochs") or 0) for r in reached)
        line += (f" ({summary.status} at epoch {epoch} of {summary.config.epochs}: its last "
                 f"{mean_std_label(mean, std)} %, no final score)")
    if summary.paper is not None:
        line += f" · paper {summary.paper.label()} %" + (f" (Table {summary.paper.table})" if detail else "")
    return line


def provenance_text(summary) -> str:
    """Where a record's numbers came from: 'workbench 0.4.0 (a1b2c3d4e5f6) · torch 2.14.1 · Intel Xeon (AVX2) ·
    34.1 CPU s · peak 812 MiB'; what an older record did not keep is left out."""
    v, cost = summary.versions, getattr(summary, "cost", {})
    parts = []
    if v.get("workbench"):
        parts.append(f"workbench {v['workbench']}" + (f" ({v['commit']})" if v.get("commit") else ""))
    if v.get("torch"):
        parts.append(f"torch {v['torch']}")
    if v.get("cpu"):
        parts.append(f"{v['cpu']}" + (f" ({v['isa']})" if v.get("isa") else ""))
    if "cpu_s" in cost:
        parts.append(f"{cost['cpu_s']:.1f} CPU s")
    if "peak_mib" in cost:
        parts.append(f"peak {cost['peak_mib']:.0f} MiB")
    return plain(" · ".join(parts))


def machine_differences(summaries) -> list[str]:
    """Where runs were computed, when that differs among them ('device cpu (x86_64) / cuda (H100)', 'cpu AMD EPYC /
    Intel Xeon'): the same config rounds differently on another CPU kind or device, so a comparison says so."""
    parts = []
    for label, of in (("device", lambda s: s.device), ("cpu", lambda s: s.versions.get("cpu", "")),
                      ("isa", lambda s: s.versions.get("isa", "")), ("torch", lambda s: s.versions.get("torch", ""))):
        values = [str(of(s)) or "?" for s in summaries]
        if len(set(values)) > 1:
            parts.append(f"{label} {' / '.join(values)}")
    return parts


def weights_label(n: int) -> str:
    """A network's number of weights, short: 8,641 / 52.3 k / 4.73 M."""
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 10_000:
        return f"{n / 1e3:.1f} k"
    return f"{n:,}"


def params_text(params: dict) -> str:
    """Settings as key=value, e.g. a sweep trial's parameters: 'alpha=0.1723 hl=256'."""
    return " ".join(f"{k}={setting(v)}" for k, v in params.items())


# ------------------------------------------------------------------ comparisons (analysis.Comparison)

# short headers: with Holm's p beside the raw one, the paired table still fits 80 columns (the notes say the rest)
COMPARISON_COLUMNS = ("a − b", "mean Δ", "95 % CI", "p", "Holm p", "won", "pairing")
COMPARISON_CSV_HEADER = ["run a", "run b", "paired", "mean a - b (points)", "95 % CI low", "95 % CI high", "p",
                         "p (Holm)", "rounds a won", "rounds", "note", "run a id", "run b id"]


def p_value(p: float | None) -> str:
    return "—" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def comparison_cells(c) -> tuple[str, ...]:
    """A comparison as the command's table and the compare screen show it (COMPARISON_COLUMNS)."""
    return (f"{c.a} − {c.b}", "—" if c.mean_diff is None else f"{c.mean_diff:+.1f}",
            "—" if c.ci is None else f"[{c.ci[0]:+.1f}, {c.ci[1]:+.1f}]", p_value(c.p), p_value(c.p_holm),
            "—" if c.wins is None else f"{c.wins}/{c.n}", "paired" if c.paired else f"Welch: {c.why_unpaired}")


def comparison_csv_row(c) -> list:
    """A comparison as a CSV row (COMPARISON_CSV_HEADER): full precision, empty where there is no figure."""
    return [c.a, c.b, "yes" if c.paired else "no (Welch)", "" if c.mean_diff is None else f"{c.mean_diff:.3f}",
            "" if c.ci is None else f"{c.ci[0]:.3f}", "" if c.ci is None else f"{c.ci[1]:.3f}",
            "" if c.p is None else f"{c.p:.4g}", "" if c.p_holm is None else f"{c.p_holm:.4g}",
            "" if c.wins is None else c.wins, c.n, c.why_unpaired, c.a_id, c.b_id]


# ------------------------------------------------------------------ sweeps (sweep.storage's Trial, StageSummary)

TRIAL_COLUMNS = ("stage", "#", "state", "params", "val %", "test %", "s", "worker")
STAGE_COLUMNS = ("stage", "trials", "best validation %", "test % there", "params")


def trial_cells(t) -> tuple[str, ...]:
    """A trial as the command's table and the app's screen both show it (TRIAL_COLUMNS)."""
    state = t.state
    if t.state == "pruned" and t.pruned_at is not None:
        state = f"pruned after {t.pruned_at}"
    elif t.state == "running" and t.epochs:
        state = f"running {t.epoch or 0}/{t.epochs}"
    return (str(t.stage + 1), str(t.number), state, params_text(t.params), pct(t.val_mean), pct(t.test_mean),
            "" if t.seconds is None else f"{t.seconds:.1f}", t.worker)


def stage_done(s, with_running: bool = True) -> str:
    """A stage's trials done of its size, with those pruned (and those running) beside."""
    return (f"{s.done}/{s.stage.size()}" + (f" (+{s.pruned} pruned)" if s.pruned else "")
            + (f" (+{s.running} running)" if with_running and s.running else ""))


def stage_cells(s, with_running: bool = True) -> tuple[str, ...]:
    """A stage (STAGE_COLUMNS): its trials done (and running), its best by validation, that trial's test score,
    its params."""
    best = s.best
    return (f"{s.index + 1}. {s.stage.name}", stage_done(s, with_running),
            mean_std_label(best.val_mean, best.val_std) if best else "—",
            mean_std_label(best.test_mean, best.test_std) if best else "—",
            params_text(best.params) if best else "")


def sweep_progress(summaries) -> str:
    """Where a running sweep stands, in a few words: its current stage (the first whose budget is not spent: a
    pruned trial spends it as a finished one does), the trials done, pruned and running there (a batch's trials
    finish together), and the best validation score so far over every stage."""
    if not summaries:
        return ""
    current = next((s for s in summaries if s.done + s.pruned < s.stage.size()), summaries[-1])
    scored = [s.best for s in summaries if s.best is not None]
    best = max(scored, key=lambda t: t.val_mean) if scored else None
    return (f"stage {current.index + 1}/{len(summaries)} {current.stage.name} {stage_done(current)}"
            + (f" · best validation {mean_std_label(best.val_mean, best.val_std)} %" if best else ""))


FINAL_COLUMNS = ("after stage", "config", "validation %", "test %", "paper %")


def final_rows(spec, finals) -> list[tuple[str, ...]]:
    """A sweep's final measurements (FINAL_COLUMNS), one per stage: the params searched so far as chosen on
    validation, the validation score, the test score over the final rounds, and what the paper reports there."""
    rows, searched = [], {}
    for stage, final in zip(spec.stages, finals):
        searched.update({p: getattr(final.config, p) for p in [*stage.grid, *stage.ranges]})
        paper = f"{stage.paper.score * 100:.2f} ({stage.paper.note})" if stage.paper else ""
        rows.append((stage.name, params_text(searched), pct(final.val_mean),
                     mean_std_label(final.summary.mean, final.summary.std), paper))
    return rows
