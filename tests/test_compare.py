"""The headless compare and plot commands: what they print and write, and how they refuse."""

from __future__ import annotations

import csv

import pytest

from workbench.cli.entry import main
from workbench.paper.config import RunConfig
from workbench.records.store import load_runs

TINY = dict(hl=16, c_hl=8, rounds=3, epochs=2, pairs=100, batch_size=20, device="cpu")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, source):
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    root = tmp_path_factory.mktemp("runs")
    configs = {"plain": RunConfig(aux_loss=False, weight_sharing=False, **TINY), "both": RunConfig(**TINY),
               "both-seed5": RunConfig(seed=5, **TINY)}
    for (name, config), result in zip(configs.items(), run_configs(list(configs.values()), source)):
        save_run(result, name, root=root)
    return root


def test_compare_prints_paired_and_unpaired_rows_and_writes_csv(runs_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "c.csv"
    assert main(["compare", "plain", "both", "both-seed5", "--runs-dir", str(runs_dir), "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "both − plain" in printed and "paired" in printed and "Welch: different seeds" in printed
    rows = list(csv.DictReader(out.open()))
    assert [(r["run a"], r["run b"], r["paired"]) for r in rows] == [
        ("both", "plain", "yes"), ("both-seed5", "plain", "no (Welch)"), ("both-seed5", "both", "no (Welch)")]
    assert rows[0]["rounds"] == "3" and rows[1]["note"] == "different seeds"
    ids = {s.name: s.id for s in load_runs(runs_dir)[0]}
    assert (rows[0]["run a id"], rows[0]["run b id"]) == (ids["both"], ids["plain"])  # two runs of one name apart
    # three tests: each p beside its Holm adjustment, worked here independently (rank i of m: (m - i) p, running max)
    p = [float(r["p"]) for r in rows]
    order = sorted(range(3), key=lambda k: p[k])
    expected, running = [0.0] * 3, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (3 - i) * p[k]))
        expected[k] = running
    assert [float(r["p (Holm)"]) for r in rows] == pytest.approx(expected, rel=1e-3)
    assert "Holm p" in printed


@pytest.mark.parametrize("argv, fragment", [
    (["compare", "plain", "nope"], "'nope'"),
    (["compare", "plain"], "at least 2 runs"),
    (["compare"], "at least 2 runs"),
    (["compare", "plain", "plain"], "again"),
    (["plot", "plain", "--out", "fig.gif"], "--out"),
    (["plot", "nope", "--out", "fig.png"], "'nope'"),
    (["plot"], "at least 1 run"),
])
def test_compare_and_plot_refuse_with_one_line(runs_dir, capsys, argv, fragment):
    assert main([*argv, "--runs-dir", str(runs_dir)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_run_is_found_by_the_start_of_its_id(runs_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    ids = [p.name for p in runs_dir.iterdir() if p.is_dir()]
    both = next(i for i in ids if '"name": "both"' in (runs_dir / i / "summary.json").read_text())
    start = next(both[:n] for n in range(4, len(both) + 1) if sum(i.startswith(both[:n]) for i in ids) == 1)
    assert main(["compare", "plain", start, "--runs-dir", str(runs_dir), "--csv", str(runs_dir.parent / "one.csv")]) == 0
    out = capsys.readouterr().out
    assert "both − plain" in out and both in out  # the run that id starts, compared
    assert "wrote 1 comparison to" in out


def test_plot_writes_a_readable_png_and_an_svg_naming_the_runs(runs_dir, tmp_path, capsys):
    import matplotlib.image

    png, svg = tmp_path / "fig.png", tmp_path / "fig.svg"
    assert main(["plot", "plain", "both", "--out", str(png), "--runs-dir", str(runs_dir)]) == 0
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 400 and image.shape[1] > 800 and image.std() > 0.05  # a drawing, not a blank page
    assert main(["plot", "plain", "both", "--out", str(svg), "--runs-dir", str(runs_dir)]) == 0
    text = svg.read_text()
    for name in ("plain", "both", "error % by digit pair", "final test accuracy"):
        assert name in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_the_figure_marks_a_run_that_did_not_finish_and_labels_its_axes(runs_dir, tmp_path, capsys):
    import json
    import shutil

    both = next(p for p in runs_dir.iterdir() if '"name": "both"' in (p / "summary.json").read_text())
    copy = tmp_path / "runs" / "20000101-000000-cccccc"
    shutil.copytree(both, copy)
    record = json.loads((copy / "summary.json").read_text())
    record.update(id=copy.name, name="stopped", status="cancelled", round_acc=[], mean=None, std=None)
    for r in record["rounds"]:
        r["status"] = "cancelled"
    (copy / "summary.json").write_text(json.dumps(record))
    (copy / "predictions.npz").unlink()
    out = tmp_path / "fig.svg"
    assert main(["plot", "stopped", "--out", str(out), "--runs-dir", str(tmp_path / "runs")]) == 0
    svg = out.read_text()
    assert "stopped (cancelled)" in svg and "<!-- test accuracy % -->" in svg  # the strip plot's y label


def test_the_figure_holds_the_paired_result_and_the_difference_view_when_asked(runs_dir, tmp_path):
    from workbench.analysis.figures import write_figure
    from workbench.records.notebook import pick_runs
    from workbench.records.store import load_runs, readable_history

    runs = pick_runs(["plain", "both"], load_runs(runs_dir)[0])
    side_by_side, difference = tmp_path / "side.svg", tmp_path / "diff.svg"
    assert write_figure(runs, [readable_history(s) for s in runs], side_by_side) == []
    text = side_by_side.read_text()
    assert "<!-- paired comparison (points, 95 % CI, p, rounds won) -->" in text  # the sixth panel, no longer empty
    assert "<!-- plain: error % by digit pair -->" in text and "error % points" not in text
    write_figure(runs, [readable_history(s) for s in runs], difference, difference=True)  # as the screen shows it
    text = difference.read_text()
    assert "<!-- both − plain: error % points -->" in text or "<!-- plain − both: error % points -->" in text
    assert "by digit pair -->" not in text


@pytest.mark.parametrize("names, width, shown", [
    (["table2-cnn-ws-aux α 0.2", "table2-cnn-ws-aux α 0.5", "table2-cnn-ws-aux α 0.8"], 10,
     ["aux α 0.2", "aux α 0.5", "aux α 0.8"]),  # the shared start goes, a setting keeps its value
    (["table2-fcn-plain", "table2-fcn-ws-aux"], 14, ["plain", "ws-aux"]),
    (["table2-fcn-ws-aux", "table2-cnn-ws-aux α 0.2"], 9, ["fcn-ws…", "cnn-ws…"]),  # cut where a word ends
    (["abcdefghijkl", "x"], 6, ["abcde…", "x"]),  # one long word: nothing cleaner to do
    (["same", "same"], 6, ["same", "same"]),
    (["table2-fcn-ws-aux α 0.2", "table2-fcn-ws-aux α 0.8"], 8, ["…α 0.2", "…α 0.8"]),  # cut where they differ
    (["table2-fcn-ws-aux α 0.2 epochs 3", "table2-fcn-ws-aux α 0.8 epochs 3", "table2-fcn-ws-aux"], 9,
     ["…α 0.2…", "…α 0.8…", "aux"]),
])
def test_names_in_a_narrow_place_are_cut_where_a_word_ends(names, width, shown):
    from workbench.format import short_names

    got = short_names(names, width)
    assert got == shown and all(len(n) <= width for n in got)


def test_figures_keep_matplotlibs_warnings_from_the_user(tmp_path, capfd):
    """A name the font has no glyphs for, one run in a scatter (nothing for a legend): the figures are written,
    and no library warning reaches the terminal (here: any warning would be an error)."""
    import warnings

    runs = str(tmp_path / "runs")
    assert main(["run", "--hl", "8", "--c-hl", "4", "--rounds", "1", "--epochs", "1", "--pairs", "100",
                 "--batch-size", "20", "--name", "🚀 运行 \u2063", "--runs-dir", runs]) == 0
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["plot", "🚀 运行 \u2063", "--out", str(tmp_path / "c.png"), "--runs-dir", runs]) == 0
        assert main(["plot", "--scatter", "weights", "--out", str(tmp_path / "s.png"), "--runs-dir", runs]) == 0
    err = capfd.readouterr().err
    assert "Warning" not in err and "Glyph" not in err, err
    assert (tmp_path / "c.png").stat().st_size > 0 and (tmp_path / "s.png").stat().st_size > 0


def test_a_comparison_names_a_difference_of_machine():
    """The same config rounds differently on another CPU kind or device: the compare screen's "what differs"
    line says where runs were computed when that differs, and says nothing of it when it does not."""
    from types import SimpleNamespace

    from workbench.format import machine_differences

    def run(device, cpu, isa):
        return SimpleNamespace(device=device, versions={"cpu": cpu, "isa": isa, "torch": "2.14.1"})

    same = [run("cpu (x86_64)", "AMD EPYC", "AVX512")] * 2
    assert machine_differences(same) == []
    apart = [run("cpu (x86_64)", "AMD EPYC", "AVX512"), run("cpu (x86_64)", "Intel Xeon", "AVX2")]
    assert machine_differences(apart) == ["cpu AMD EPYC / Intel Xeon", "isa AVX512 / AVX2"]
    older = [run("cpu (x86_64)", "AMD EPYC", "AVX512"), SimpleNamespace(device="cpu (x86_64)", versions={})]
    assert machine_differences(older) == ["cpu AMD EPYC / ?", "isa AVX512 / ?", "torch 2.14.1 / ?"]


def test_the_figure_says_where_each_runs_numbers_came_from(runs_dir, tmp_path):
    """Issue 31, item 4: the report figure names each run's workbench, torch, CPU and cost, and says first when
    its runs were computed on different machines."""
    import dataclasses

    from workbench.analysis.figures import write_figure
    from workbench.records.store import readable_history

    plain, both = sorted((s for s in load_runs(runs_dir)[0] if s.name in ("plain", "both")), key=lambda s: s.name)
    elsewhere = dataclasses.replace(plain, versions={**plain.versions, "cpu": "Intel Xeon", "isa": "AVX2"},
                                    cost={"cpu_s": 12.5, "peak_mib": 640.0})
    assert both.versions["workbench"] and both.versions["cpu"] and both.versions["torch"]  # a new record keeps them
    out = tmp_path / "where.svg"
    write_figure([both, elsewhere], [readable_history(s) for s in (both, elsewhere)], out)
    svg = out.read_text()
    assert f"computed on different machines: cpu {both.versions['cpu']} / Intel Xeon" in svg
    assert f"workbench {both.versions['workbench']}" in svg and f"torch {both.versions['torch']}" in svg
    assert "plain: cpu" in svg and "Intel Xeon (AVX2) · 12.5 CPU s · peak 640 MiB" in svg
