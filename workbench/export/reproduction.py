"""The reproduction report as a file (`digit-workbench report`): one self-contained HTML page (its figures inline,
no network, no other file), or Markdown for a repository or a wiki with its figures beside it. Every name a record
gives is written as text: escaped in HTML, code-quoted where Markdown would read it."""

from __future__ import annotations

import base64
import datetime
import html
import io
from dataclasses import dataclass
from pathlib import Path

import workbench
from workbench.analysis.figures import comparison_figure, quietly, weights_figure
from workbench.records.weights import WeightsUnreadable
from workbench.analysis.reproduction import SUBNETS, TABLES, Estimate, Reproduction, TableRow
from workbench.format import STAGE_COLUMNS, machine_differences, mean_std_label, p_value, plain, provenance_text
from workbench.fsutil import atomic_write_bytes, atomic_write_text
from workbench.records.store import readable_history

FORMATS = ("html", "md")


@dataclass
class StageTable:
    """One sweep's stages as `sweep --show` tables them (format.STAGE_COLUMNS), or why it cannot be read."""

    title: str
    rows: list[tuple[str, ...]]
    problem: str = ""


@dataclass
class Figure:
    name: str  # its file's stem, for Markdown
    caption: str
    png: bytes


@quietly
def png_of(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def report_figures(rep: Reproduction) -> tuple[list[Figure], list[str]]:
    """Per subnet, its Table II runs compared (curves with bands, every round's score, error heatmaps), and what
    the first layer learned with and without weight sharing; what cannot be drawn is said, one line each."""
    figures, notes = [], []
    by_preset = {r.preset: r.run for r in rep.rows if r.run is not None}
    for subnet, name in SUBNETS.items():
        runs = [by_preset[p] for p in (f"table2-{subnet}-{t}" for t in ("plain", "aux", "ws", "ws-aux"))
                if p in by_preset]
        if not runs:
            continue
        fig = comparison_figure(runs, [readable_history(s) for s in runs], notes)
        figures.append(Figure(f"table2-{subnet}", f"Table II, {name}: test accuracy and loss per epoch (mean ± std "
                                                  "over rounds), every round's final score, errors by digit pair",
                              png_of(fig)))
        for tag, said in (("ws-aux", "with weight sharing"), ("aux", "without weight sharing")):
            run = by_preset.get(f"table2-{subnet}-{tag}")
            if run is None:
                continue
            try:
                png = png_of(weights_figure(run, 0))
            except (WeightsUnreadable, OSError, ValueError) as exc:
                notes.append(f"{plain(run.name)}: no first-layer figure ({exc})")
                continue
            figures.append(Figure(f"first-layer-{subnet}-{tag}",
                                  f"What the first layer learned, {name} {said} (round 0)", png))
    return figures, notes


def estimate_cells(e: Estimate) -> tuple[str, str, str, str, str]:
    if e.mean is None:
        return e.what, "—", "—", "—", e.why
    return (e.what, f"{e.mean:+.2f}", "—" if e.ci is None else f"[{e.ci[0]:+.2f}, {e.ci[1]:+.2f}]", p_value(e.p),
            e.why or f"{e.n} rounds, paired")


BEYOND_COLUMNS = ("preset", "ours %", "the paper's best %", "Δ points", "ours − our run of the paper's best",
                  "95 % interval", "p")


def beyond_cells(b) -> tuple[str, ...]:
    run, e = b.run, b.against_ours
    ours = mean_std_label(run.mean, run.std) if run is not None else f"missing: digit-workbench run --preset {b.preset}"
    paper = f"{mean_std_label(b.best.paper.score, b.best.paper.std)} ({b.best.preset})"
    over = "—" if b.over_paper is None else f"{b.over_paper:+.1f}"
    cells = estimate_cells(e)
    return (b.preset, ours, paper, over, cells[1] if e.mean is not None else e.why, cells[2], cells[3])


ORIGIN_COLUMNS = ("run", "digits", "device", "made by, and what it cost")


def origin_cells(run) -> tuple[str, ...]:
    return (plain(f"{run.name} · {run.id}"), plain(run.data_source), plain(run.device), provenance_text(run) or "—")


def row_cells(r: TableRow) -> tuple[str, ...]:
    run = r.run
    if run is None:
        return (r.row, r.preset, mean_std_label(r.paper.score, r.paper.std), "—", "—", "—", "—",
                f"missing: {r.missing}")
    return (r.row, r.preset, mean_std_label(r.paper.score, r.paper.std), mean_std_label(run.mean, run.std),
            f"{r.difference:+.1f}", str(len(run.round_acc)), plain(run.data_source), plain(f"{run.name} · {run.id}"))


ROW_COLUMNS = ("row", "preset", "paper %", "ours %", "Δ points", "rounds", "digits", "run")
ESTIMATE_COLUMNS = ("estimate", "Δ points", "95 % interval", "p", "from")


def header_lines(rep: Reproduction) -> list[str]:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Made by digit-workbench {workbench.__version__} on {when} from {len(rep.runs)} runs: for each row of "
             "the paper, the latest finished run of its preset that is still that row."]
    differ = machine_differences(rep.runs)
    if differ:
        lines.append("The runs were computed on different machines (" + "; ".join(differ) + "): the same config "
                     "rounds differently on another CPU kind or device.")
    elif rep.runs:
        lines.append(f"Computed on {plain(rep.runs[0].device)}: {provenance_text(rep.runs[0])}.")
    if rep.missing:
        lines.append(f"{len(rep.missing)} of the paper's rows have no run yet; each names the command that makes it.")
    return lines


# ------------------------------------------------------------------ HTML

STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.missing{color:#a33}figure{margin:1rem 0}
img{max-width:100%}figcaption{color:#555;font-size:.9em}code{background:#f4f4f4;padding:0 .2em}"""


def html_table(columns: tuple[str, ...], rows: list[tuple[str, ...]], numeric: set[int], missing=None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for k, row in enumerate(rows):
        cls = ' class="missing"' if missing and missing[k] else ""
        cells = "".join(f'<td class="n">{html.escape(c)}</td>' if i in numeric else f"<td>{html.escape(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def to_html(rep: Reproduction, figures: list[Figure], notes: list[str], stages: list[StageTable] = ()) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>Reproducing Chahed et al.: weight sharing and auxiliary losses</title>",
           f"<style>{STYLE}</style></head><body>",
           "<h1>Reproducing <i>Comparing MNIST digits with weight sharing and auxiliary losses</i></h1>"]
    out += [f"<p>{html.escape(line)}</p>" for line in header_lines(rep)]
    for table, title in TABLES.items():
        rows = rep.table(table)
        if rows:
            out.append(f"<h2>{html.escape(title)}</h2>")
            out.append(html_table(ROW_COLUMNS, [row_cells(r) for r in rows], {2, 3, 4, 5},
                                  [r.run is None for r in rows]))
    out.append("<h2>The paper's questions</h2><p>Each estimate is a paired difference over rounds in accuracy "
               "points: round r of every Table II run of a subnet trains and tests on the same pairs.</p>")
    for subnet, name in SUBNETS.items():
        out.append(f"<h3>{html.escape(name)}</h3>")
        for q in (q for q in rep.questions if q.subnet == subnet):
            out.append(f"<h4>{html.escape(q.asked)}</h4>")
            out.append(html_table(ESTIMATE_COLUMNS, [estimate_cells(e) for e in q.estimates], {1, 2, 3}))
    if stages:
        out.append("<h2>The sweeps' stages</h2><p>Each stage's best trial by validation score, and its test score "
                   "(shown, never used to choose).</p>")
    for t in stages:
        out.append(f"<h3>{html.escape(plain(t.title))}</h3>")
        out.append(f'<p class="missing">{html.escape(t.problem)}</p>' if t.problem
                   else html_table(STAGE_COLUMNS, t.rows, {2, 3}))
    if rep.beyond:
        out.append("<h2>Beyond the paper</h2><p>Each preset beyond the paper against the paper's best for its "
                   "subnet: its score, and the paired difference from our run of that best.</p>")
        out.append(html_table(BEYOND_COLUMNS, [beyond_cells(b) for b in rep.beyond], {1, 2, 3, 4, 5, 6}))
    out.append("<h2>Where the numbers came from</h2>")
    out.append(html_table(ORIGIN_COLUMNS, [origin_cells(r) for r in rep.runs], set()))
    if figures:
        out.append("<h2>Figures</h2>")
    for f in figures:
        data = base64.b64encode(f.png).decode("ascii")
        out.append(f'<figure><img alt="{html.escape(f.caption)}" src="data:image/png;base64,{data}">'
                   f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
    out += [f'<p class="missing">{html.escape(n)}</p>' for n in notes]
    out.append("</body></html>")
    return "\n".join(out)


# ------------------------------------------------------------------ Markdown

def md_cell(text: str) -> str:
    """A cell as Markdown shows it literally: pipes and backticks cannot end the cell or open code."""
    text = plain(text).replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")
    return text.replace("*", "\\*").replace("_", "\\_").replace("<", "&lt;").replace("[", "\\[")


def md_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def to_markdown(rep: Reproduction, figures: list[Figure], notes: list[str], folder: str,
                stages: list[StageTable] = ()) -> str:
    out = ["# Reproducing *Comparing MNIST digits with weight sharing and auxiliary losses*", ""]
    out += [md_cell(line) + "\n" for line in header_lines(rep)]
    for table, title in TABLES.items():
        rows = rep.table(table)
        if rows:
            out += [f"## {title}", ""] + md_table(ROW_COLUMNS, [row_cells(r) for r in rows])
    out += ["## The paper's questions", "", "Each estimate is a paired difference over rounds in accuracy points: "
            "round r of every Table II run of a subnet trains and tests on the same pairs.", ""]
    for subnet, name in SUBNETS.items():
        out += [f"### {name}", ""]
        for q in (q for q in rep.questions if q.subnet == subnet):
            out += [f"**{q.asked}**", ""] + md_table(ESTIMATE_COLUMNS, [estimate_cells(e) for e in q.estimates])
    if stages:
        out += ["## The sweeps' stages", "", "Each stage's best trial by validation score, and its test score "
                "(shown, never used to choose).", ""]
    for t in stages:
        out += [f"### {md_cell(t.title)}", ""] + ([md_cell(t.problem), ""] if t.problem
                                                   else md_table(STAGE_COLUMNS, t.rows))
    if rep.beyond:
        out += ["## Beyond the paper", "", "Each preset beyond the paper against the paper's best for its subnet: "
                "its score, and the paired difference from our run of that best.", ""]
        out += md_table(BEYOND_COLUMNS, [beyond_cells(b) for b in rep.beyond])
    out += ["## Where the numbers came from", ""] + md_table(ORIGIN_COLUMNS, [origin_cells(r) for r in rep.runs])
    if figures:
        out += ["## Figures", ""]
    for f in figures:
        out += [f"![{md_cell(f.caption)}]({folder}/{f.name}.png)", "", f"*{md_cell(f.caption)}*", ""]
    out += [md_cell(n) + "\n" for n in notes]
    return "\n".join(out)


def write_report(rep: Reproduction, out: Path, fmt: str, stages: list[StageTable] = ()) -> list[Path]:
    """The report at `out` (its figures beside it in `<stem>-figures/` for Markdown), each file written whole;
    the page last, so it never names a figure that is not there. Returns what was written."""
    figures, notes = report_figures(rep)
    if fmt == "html":
        atomic_write_text(out, to_html(rep, figures, notes, stages))
        return [out]
    folder = out.parent / f"{out.stem}-figures"
    written = []
    for f in figures:
        atomic_write_bytes(folder / f"{f.name}.png", f.png)
        written.append(folder / f"{f.name}.png")
    atomic_write_text(out, to_markdown(rep, figures, notes, folder.name, stages))
    return written + [out]
