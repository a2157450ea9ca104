"""Which settings matter (analysis/importance.py): runs and a sweep's trials as rows, Optuna's fANOVA importance,
parallel coordinates; `plot --importance` / `--parallel`, the across-runs view's `i` and `p`, the sweep screen's
`i`."""

from __future__ import annotations

import json
import random

import pytest

from workbench.analysis.importance import Row, importances, label, parallel, rows_of, rows_of_runs
from workbench.cli.entry import main
from workbench.paper.config import RunConfig
from workbench.records.store import RunSummary

TINY = RunConfig(hl=16, c_hl=8, rounds=2, epochs=1, pairs=100, batch_size=20, device="cpu")


def summary(k, config, mean, status="done"):
    return RunSummary(id=f"20261208-000000-{k:06d}", name=f"run {k}", preset=None, status=status, reason="",
                      config=config, round_acc=[] if mean is None else [mean], mean=mean, std=0.01, paper=None,
                      wall_time=1.0, device="cpu", data_source="digits", engine="batched", started_at=0.0)


def study_runs(n=24, seed=1):
    """Runs whose score follows weight sharing by 10 points and alpha by at most 1; the seed is noise only."""
    rng = random.Random(seed)
    runs = []
    for k in range(n):
        ws, alpha = k % 2 == 0, rng.choice([0.2, 0.5, 0.8])
        score = 0.80 + 0.10 * ws + 0.0125 * alpha + rng.gauss(0, 0.002)
        runs.append(summary(k, TINY.replace(weight_sharing=ws, alpha=alpha, seed=rng.randrange(1000)), score))
    return runs


def write_records(root, runs):
    for s in runs:
        (root / s.id).mkdir(parents=True)
        (root / s.id / "summary.json").write_text(json.dumps(s.to_dict()))


def test_the_setting_that_drives_the_score_weighs_most_and_the_same_runs_weigh_the_same():
    rows = rows_of_runs(study_runs())
    assert rows.settings == ["weight_sharing", "alpha", "seed"]  # what differs, in the form's order
    result = importances(rows)
    weights = dict(result.settings)
    assert result.why_none == "" and result.rows == 24
    assert weights["weight_sharing"] > 0.8 > weights["alpha"] and weights["seed"] < 0.1
    assert sum(weights.values()) == pytest.approx(1.0)
    assert [k for k, _ in result.settings][0] == "weight_sharing"  # largest first
    assert importances(rows_of_runs(study_runs())).settings == result.settings  # fANOVA's forest has one seed


def test_rows_hold_the_settings_each_run_uses_and_name_what_is_left_out():
    runs = [summary(1, TINY.replace(alpha=0.2), 0.8), summary(2, TINY.replace(alpha=0.8), 0.85),
            summary(3, TINY.replace(aux_loss=False, alpha=0.3), 0.75), summary(4, TINY, None, status="cancelled"),
            summary(5, TINY.replace(device="auto"), 0.82)]
    rows = rows_of_runs(runs)
    assert [r.name for r in rows.rows] == ["run 1", "run 2", "run 3", "run 5"]
    assert "alpha" not in rows.rows[2].settings  # no auxiliary loss: alpha is no setting of that run
    assert all("device" not in r.settings for r in rows.rows)  # where it ran is no setting of what it learned
    assert rows.settings == ["aux_loss"] and rows.unshared == ["alpha"]
    assert rows.left_out() == "1 run not done; alpha (not every run has it)"


@pytest.mark.parametrize("runs, why", [
    ([summary(1, TINY, 0.8), summary(2, TINY.replace(alpha=0.8), 0.9)], "2 done runs: importance needs three or more"),
    ([summary(k, TINY, 0.8 + k / 100) for k in range(3)], "no setting differs among these runs"),
    ([summary(k, TINY.replace(alpha=k / 10), 0.8) for k in range(3)], "every run has the same score"),
])
def test_too_little_to_weigh_says_why_instead_of_inventing_bars(runs, why):
    assert importances(rows_of_runs(runs)).why_none == why


def test_parallel_coordinates_place_each_value_on_its_axis():
    rows = rows_of([Row("a", {"subnet": "cnn", "weight_sharing": True, "lr": 1e-4, "alpha": 0.2}, 90.0),
                    Row("b", {"subnet": "basic", "weight_sharing": False, "lr": 1e-3, "alpha": 0.6}, 70.0),
                    Row("c", {"subnet": "fcn", "weight_sharing": True, "lr": 1e-2, "alpha": 1.0}, 80.0)])
    lines = parallel(rows, "validation %")
    assert [a.key for a in lines.axes] == ["subnet", "weight_sharing", "alpha", "lr", "score"]
    assert [t for _, t in lines.axes[0].ticks] == ["basic", "fcn", "cnn"]  # the paper's order, not the alphabet's
    assert [t for _, t in lines.axes[1].ticks] == ["off", "on"]
    assert lines.axes[3].log and not lines.axes[2].log  # a rate spanning two decades reads on a log axis
    assert lines.axes[4].label == "validation %" and [t for _, t in lines.axes[4].ticks] == ["70.0", "90.0"]
    by_name = {name: places for name, places, _ in lines.lines}
    assert by_name["b"] == pytest.approx([0.0, 0.0, 0.5, 0.5, 0.0])
    assert by_name["a"] == pytest.approx([1.0, 1.0, 0.0, 0.0, 1.0])
    assert [name for name, _, _ in lines.lines] == ["b", "c", "a"]  # the best drawn last, on top
    assert (lines.low, lines.high) == (70.0, 90.0)


def test_plot_importance_and_parallel_write_figures_of_the_runs_the_words_find(tmp_path, capsys):
    runs = study_runs() + [summary(99, TINY.replace(subnet="cnn"), 0.5)]
    write_records(tmp_path / "runs", runs)
    out = tmp_path / "importance.svg"
    assert main(["plot", "--importance", "fcn", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "Which settings matter: 24 done runs" in said and f"wrote {out} (24 runs, 3 settings that differ)" in said
    assert said.index("Weight sharing") < said.index("alpha") and "which settings matter · 24 runs" in out.read_text()
    out = tmp_path / "parallel.png"
    assert main(["plot", "--parallel", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert f"wrote {out} (25 runs, 4 settings that differ)" in capsys.readouterr().out  # the CNN: Subnet differs
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, said", [
    (["--importance", "--parallel"], "--parallel: one figure at a time, and --importance was given too"),
    (["--scatter", "alpha", "--importance"], "--importance: one figure at a time, and --scatter was given too"),
    (["--importance", "cnn"], "RUN: 0 done runs that the words find: nothing to weigh"),
    (["--parallel", "alpha>2"], "RUN: 0 done runs that the words find: nothing to weigh"),
    (["--importance", "nosuchfield=1"], "RUN: 'nosuchfield=1': no setting or field 'nosuchfield'"),
    (["--importance", "--out", "x.gif"], "--out: a figure is .png, .svg or .pdf"),
])
def test_plot_importance_refuses_in_one_line_naming_the_flag(tmp_path, capsys, argv, said):
    write_records(tmp_path / "runs", study_runs(6))
    assert main(["plot", *argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1


async def test_the_across_runs_view_shows_importance_and_parallel_coordinates(tmp_path):
    from textual.widgets import Static

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.results import ResultsTable
    from workbench.tui.scatter import ScatterScreen

    write_records(tmp_path / "runs", study_runs())
    app = WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "x.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        app.query_one(ResultsTable).focus()
        await pilot.press("a", "i")
        screen = app.screen
        assert isinstance(screen, ScatterScreen)
        for _ in range(200):
            if screen.importance is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause()
        plot = screen.query_one("#scatter-plot").plt.monitor
        assert dict(screen.importance.settings) == dict(importances(rows_of_runs(study_runs())).settings)
        assert "which settings matter · 24 runs" in plot.title
        said = {f"{label(k)} {v:.2f}" for k, v in screen.importance.settings}
        assert set(plot.ylabels[0]) == said  # a bar per setting, its share beside its name
        top = max(zip(plot.yticks[0], plot.ylabels[0]))[1]
        assert top.startswith("Weight sharing")  # the one that matters most, on top
        assert sorted(max(x) for x in plot.x) == pytest.approx(sorted(v for _, v in screen.importance.settings))
        drawn = str(screen.query_one("#scatter-legend", Static).render())
        assert "share of the variance of the final test accuracy (fANOVA, Optuna)" in drawn
        await pilot.press("p")
        await pilot.pause()
        plot = screen.query_one("#scatter-plot").plt.monitor
        assert len([x for x in plot.x if len(x) == 4]) == 24  # every run a line through three settings and its score
        assert "colour: score" in str(screen.query_one("#scatter-legend", Static).render())
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert (tmp_path / "parallel.png").read_bytes()[:4] == b"\x89PNG"
        await pilot.press("s")
        await pilot.pause()
        assert "against" in str(screen.query_one("#scatter-caption", Static).render())
