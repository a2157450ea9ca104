"""Across runs: final score against one setting, every run a point (across_runs.py), in the app's scatter view and
from `plot --scatter FIELD`, filtered like the results table."""

from __future__ import annotations

import dataclasses

import pytest

from workbench.analysis.across_runs import field_named, scatter
from workbench.cli.entry import main
from workbench.paper.architecture import weight_count
from workbench.paper.config import RunConfig
from workbench.records.store import RunSummary, load_runs

TINY = RunConfig(hl=16, c_hl=8, rounds=2, epochs=1, pairs=100, batch_size=20, device="cpu")


def summary(name, config, mean=0.9, std=0.01, status="done"):
    return RunSummary(id=f"20261202-000000-{abs(hash(name)) % 999999:06d}", name=name, preset=None, status=status,
                      reason="", config=config, round_acc=[mean], mean=mean, std=std, paper=None, wall_time=1.0,
                      device="cpu", data_source="digits", engine="batched", started_at=0.0)


RUNS = [summary("a2", TINY.replace(alpha=0.2), 0.80, 0.02), summary("a8", TINY.replace(alpha=0.8), 0.85, 0.01),
        summary("plain", TINY.replace(weight_sharing=False, aux_loss=False), 0.75, 0.03),
        summary("basic", TINY.replace(subnet="basic"), 0.70, 0.0),
        summary("cut", TINY.replace(alpha=0.5), None, None, status="cancelled")]


def test_points_are_the_done_runs_that_have_the_setting_in_percent_with_their_std():
    points = scatter(RUNS, "alpha")
    assert [(p.name, p.x, round(p.mean, 6), round(p.std, 6)) for p in points.points] == [
        ("a2", 0.2, 80.0, 2.0), ("a8", 0.8, 85.0, 1.0)]
    assert (points.unused, points.not_done) == (2, 1)  # the basic net and aux off have no alpha
    assert points.left_out() == "2 without alpha, 1 not done"
    assert list(points.groups) == ["fcn WS aux"] and points.ticks is None


def test_weights_come_from_the_architecture_and_a_wide_span_reads_on_a_log_axis():
    points = scatter(RUNS, "weights")
    assert {p.name: p.x for p in points.points} == {s.name: weight_count(s.config) for s in RUNS[:4]}
    assert points.log_x == (max(p.x for p in points.points) / min(p.x for p in points.points) >= 10)
    assert list(points.groups) == ["basic", "fcn plain", "fcn WS aux"]  # the paper's order


def test_a_switch_sits_at_off_and_on_with_each_colour_group_beside_the_others():
    points = scatter(RUNS, "weight_sharing", colour_by="aux_loss")
    assert points.ticks == [(0.0, "off"), (1.0, "on")]
    by_name = {p.name: (p.x, p.group) for p in points.points}
    assert by_name["plain"] == (pytest.approx(-0.04), "aux off")
    assert by_name["a2"] == (pytest.approx(1.04), "aux on")
    subnets = scatter(RUNS, "subnet", colour_by="subnet")
    assert [name for _, name in subnets.ticks] == ["basic", "fcn", "cnn"]
    assert {p.name: round(p.x) for p in subnets.points}["basic"] == 0
    with pytest.raises(ValueError, match="colour by one of"):
        scatter(RUNS, "alpha", colour_by="nonsense")


@pytest.mark.parametrize("typed, key", [("alpha", "alpha"), ("C-HL", "c_hl"), ("c_hl", "c_hl"),
                                        ("Weights", "weights"), ("learning rate", "lr"), (" lr ", "lr")])
def test_a_setting_is_found_as_a_user_types_it(typed, key):
    assert field_named(typed) == key


def test_an_unknown_setting_names_the_known_ones():
    with pytest.raises(ValueError, match=r"no setting named 'width' \(known: subnet, "):
        field_named("width")


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, source):
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    root = tmp_path_factory.mktemp("across") / "runs"
    named = {"α 0.2": TINY.replace(alpha=0.2), "α 0.8": TINY.replace(alpha=0.8),
             "no aux": TINY.replace(aux_loss=False), "cnn": TINY.replace(subnet="cnn", bc=4)}
    for (name, _), result in zip(named.items(), run_configs(list(named.values()), source)):
        save_run(result, name, root=root)
    return root


def test_plot_scatter_writes_the_filtered_runs_and_says_what_it_left_out(runs_root, tmp_path, capsys):
    out = tmp_path / "alpha.svg"
    assert main(["plot", "--scatter", "alpha", "fcn", "--runs-dir", str(runs_root), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out} (2 runs against alpha; 1 without alpha left out)"
    svg = out.read_text()
    assert "test accuracy against alpha" in svg and "fcn WS aux" in svg
    assert main(["plot", "--scatter", "weights", "--runs-dir", str(runs_root), "--out", str(tmp_path / "w.png")]) == 0
    assert (tmp_path / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "(4 runs against weights)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["--scatter", "width"], "--scatter: no setting named 'width'"),
    (["--scatter", "alpha", "nothing-has-this"], "RUN: no done run that the words find has alpha"),
    (["--scatter", "alpha", "--out", "x.gif"], "--out: a figure is .png, .svg or .pdf"),
])
def test_plot_scatter_refuses_in_one_line_naming_the_flag(runs_root, capsys, argv, fragment):
    assert main(["plot", *argv, "--runs-dir", str(runs_root)]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


async def test_the_scatter_view_shows_what_the_results_filter_shows(runs_root, tmp_path):
    from textual.widgets import Static

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.results import ResultsTable
    from workbench.tui.scatter import ScatterScreen

    app = WorkbenchApp(runs_root=runs_root, export_path=tmp_path / "x.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        table = app.query_one(ResultsTable)
        assert len(table.summaries) == 4
        table.set_filter("fcn")
        table.focus()
        await pilot.press("a")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ScatterScreen)
        caption = str(screen.query_one("#scatter-caption", Static).render())
        assert "against alpha · 2 of 3 runs (1 without alpha left out) · filter 'fcn'" in caption
        assert sorted(p.name for p in screen.points.points) == ["α 0.2", "α 0.8"]
        assert screen.fields == ["aux_loss", "alpha"]  # what differs among them: HL (16 in all) does not
        assert "[ ] setting (2 of 2 that differ)" in caption
        await pilot.press("right_square_bracket")  # alpha → aux loss (round again), past every setting they share
        assert screen.field == "aux_loss" and len(screen.points.points) == 3
        await pilot.press("left_square_bracket")
        assert screen.field == "alpha"
        await pilot.press("right_square_bracket")
        await pilot.press("o")
        assert screen.colour_by == "subnet" and list(screen.points.groups) == ["fcn"]
        legend = str(screen.query_one("#scatter-legend", Static).render())
        assert "fcn (3)" in legend
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert (tmp_path / "scatter-aux_loss.png").read_bytes()[:4] == b"\x89PNG"
        await pilot.press("escape")
        assert not isinstance(app.screen, ScatterScreen)


def test_a_failed_run_is_never_a_point(runs_root):
    summaries = load_runs(runs_root)[0]
    failed = [dataclasses.replace(s, status="failed") if s.name == "α 0.2" else s for s in summaries]
    points = scatter(failed, "alpha")
    assert sorted(p.name for p in points.points) == ["cnn", "α 0.8"] and points.not_done == 1
