"""The Textual workbench, driven headless with Pilot: every behaviour the issue names."""

import csv
import re
import subprocess
import sys
import time

import pytest
from textual.widgets import DataTable, Input, Select, Switch

from workbench.paper.config import RunConfig
from workbench.training.group import NamedRun
from workbench.tui.app import WorkbenchApp
from workbench.tui.confirm import Confirm
from workbench.tui.details import RunDetails
from workbench.tui.form import ConfigForm
from workbench.tui.live import LiveView
from workbench.tui.results import ResultsTable

TINY = {"epochs": "2", "rounds": "2", "pairs": "100", "batch_size": "20", "hl": "16", "c_hl": "8"}


@pytest.fixture
def make_app(tmp_path):
    def make(**kwargs):
        return WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "export.csv", **kwargs)

    return make


def set_fields(app, **values):
    form = app.query_one(ConfigForm)
    for key, value in values.items():
        form.query_one(f"#f-{key}", Input).value = str(value)
    form.refresh_state()


async def wait_until(pilot, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.05)


async def wait_idle(pilot, app, timeout=60.0):
    await wait_until(pilot, lambda: app.runs.idle, timeout)
    await pilot.pause(0.1)


async def test_preset_fills_the_form_and_edits_are_shown(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.query_one(ConfigForm)
        form.query_one("#preset", Select).value = "table2-cnn-plain"
        await pilot.pause()
        assert form.query_one("#f-subnet", Select).value == "cnn"
        assert form.query_one("#f-weight_sharing", Switch).value is False
        assert form.query_one("#f-aux_loss", Switch).value is False
        assert form.query_one("#f-bc", Input).value == "4"
        status = str(form.query_one("#preset-status").render())
        assert "table2-cnn-plain" in status and "edited" not in status and "83.3" in status
        await pilot.click("#f-hl")
        await pilot.press("end", "ctrl+u", *"128")
        await pilot.pause()
        status = str(form.query_one("#preset-status").render())
        assert "edited" in status and "HL 128" in status
        config, errors = form.read()
        assert errors == {} and config.hl == 128 and config.subnet == "cnn"


async def test_switches_enable_and_disable_fields(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.query_one(ConfigForm)
        assert form.query_one("#f-bc").disabled and form.query_one("#f-k").disabled  # fcn by default
        form.query_one("#f-subnet", Select).value = "cnn"
        await pilot.pause()
        assert not form.query_one("#f-bc").disabled
        form.query_one("#f-aux_loss", Switch).value = False
        await pilot.pause()
        assert form.query_one("#f-alpha").disabled
        form.query_one("#f-aux_loss", Switch).value = True
        await pilot.pause()
        assert not form.query_one("#f-alpha").disabled
        form.query_one("#f-subnet", Select).value = "basic"
        await pilot.pause()
        for key in ("weight_sharing", "aux_loss", "alpha", "c_hl", "c_kl", "bc", "k"):
            assert form.query_one(f"#f-{key}").disabled, key
        assert not form.query_one("#f-hl").disabled


async def test_invalid_input_is_marked_and_run_is_refused_naming_the_field(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.click("#f-hl")
        await pilot.press("end", "ctrl+u", *"abc")
        await pilot.pause()
        form = app.query_one(ConfigForm)
        assert form.query_one("#f-hl").has_class("-bad")
        assert "whole number" in str(form.query_one("#e-hl").render())
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.runs.idle
        assert any("fix HL first" in str(n.message) and "Cannot run" in (n.title or "") for n in app._notifications)
        # a field that is off does not block a run
        form.query_one("#f-subnet", Select).value = "cnn"
        await pilot.pause()
        set_fields(app, hl="32", bc="0")
        assert "bc" in form.read()[1]
        form.query_one("#f-subnet", Select).value = "fcn"
        await pilot.pause()
        assert form.read()[1] == {}


async def test_a_run_adds_a_row_a_curve_and_a_record(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        set_fields(app, **TINY)
        await pilot.press("ctrl+r")
        await wait_idle(pilot, app)
        table = app.query_one(ResultsTable)
        assert table.row_count == 1
        (summary,) = table.summaries.values()
        assert summary.status == "done" and len(summary.round_acc) == 2
        assert len(app.query_one(LiveView).curves) == 4  # 2 rounds x 2 epochs drawn
        assert (tmp_path / "runs" / summary.id / "summary.json").exists()


async def test_a_malformed_record_is_named_and_the_app_goes_on(make_app, tmp_path, source):
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    good = run_configs([RunConfig(subnet="fcn", hl=8, c_hl=4, rounds=1, epochs=1, pairs=100, batch_size=20,
                                  device="cpu")], source)[0]
    save_run(good, "good", root=tmp_path / "runs")
    bad = tmp_path / "runs" / "20200101-000000-bad"
    bad.mkdir()
    (bad / "summary.json").write_text('{"id": "x", "mean": "abc", "config": {}}')
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert [s.name for s in app.query_one(ResultsTable).summaries.values()] == ["good"]
        assert any("20200101-000000-bad" in str(n.message) for n in app._notifications)


async def test_runs_another_process_writes_appear_and_are_exported(make_app, tmp_path, monkeypatch):
    import workbench.tui.app as app_module

    monkeypatch.setattr(app_module, "RESCAN_S", 0.3)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(ResultsTable)
        assert table.row_count == 0
        done = subprocess.run([sys.executable, "-m", "workbench", "run", "--rounds", "1", "--epochs", "1",
                               "--pairs", "100", "--batch-size", "20", "--hl", "8", "--name", "from-the-cli",
                               "--runs-dir", str(tmp_path / "runs"), "--device", "cpu"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        await wait_until(pilot, lambda: table.row_count == 1, timeout=10)
        (summary,) = table.summaries.values()
        assert summary.name == "from-the-cli"
        await pilot.press("ctrl+o")
        await pilot.pause(0.2)
        rows = list(csv.DictReader((tmp_path / "export.csv").open()))
        assert [r["name"] for r in rows] == ["from-the-cli"]
        await pilot.pause(1.0)
        assert table.row_count == 1  # a run already shown is not added twice


async def test_the_apps_queue_gives_the_numbers_the_engine_gives_alone(make_app, source):
    """Table II through the app's queue (one config at a time, in a worker thread) against each config trained
    alone and all eight trained together by the engine: the same per-round accuracies, bit for bit."""
    import dataclasses

    from workbench.engine import run_configs
    from workbench.paper.presets import TABLE_II, find_preset

    short = {"epochs": 1, "rounds": 2, "pairs": 100, "batch_size": 20, "device": "cpu"}
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        for name in TABLE_II:  # the paper's rows, shortened
            app.presets[name] = dataclasses.replace(app.presets[name], config=app.presets[name].config.replace(**short))
        app.action_run_table2()
        await wait_idle(pilot, app, timeout=120)
        by_preset = {s.preset: s for s in app.query_one(ResultsTable).summaries.values()}
    configs = [find_preset(name).config.replace(**short) for name in TABLE_II]
    together = run_configs(configs, source)
    for name, config, joint in zip(TABLE_II, configs, together):
        alone = run_configs([config], source)[0]
        assert by_preset[name].round_acc == alone.test_accuracies() == joint.test_accuracies(), name


async def test_runs_on_disk_appear_at_start_and_sort(make_app, tmp_path, source):
    from workbench.engine import run_configs
    from workbench.paper.config import RunConfig
    from workbench.records.store import save_run

    config = RunConfig(hl=16, c_hl=8, rounds=2, epochs=1, pairs=100, batch_size=20, device="cpu")
    for name, cfg in (("b-run", config), ("a-run", config.replace(seed=3))):
        save_run(run_configs([cfg], source)[0], name, root=tmp_path / "runs")
    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(ResultsTable)
        assert [s.name for s in table.shown()] == ["b-run", "a-run"]
        table.focus()
        await pilot.press("s")  # by the keyboard: the first column, A to Z, its header marked
        await pilot.pause()
        assert [s.name for s in table.shown()] == ["a-run", "b-run"]
        assert str(table.columns[table.get_column_key("run")].label) == "run ▲"
        await pilot.press("r")
        await pilot.pause()
        assert [s.name for s in table.shown()] == ["b-run", "a-run"]
        assert str(table.columns[table.get_column_key("run")].label) == "run ▼"
        while table.sort_column != "acc":  # on to the accuracy: best first
            await pilot.press("s")
        await pilot.pause()
        accuracies = [s.mean for s in table.shown()]
        assert accuracies == sorted(accuracies, reverse=True)
        assert str(table.columns[table.get_column_key("run")].label).rstrip() == "run"
        acc = table.columns[table.get_column_key("acc")]
        assert str(acc.label) == "test acc % ▼" and acc.content_width >= len("test acc % ▼")  # the arrow is seen
        # filter by text: "/" goes to the filter, every word must match
        await pilot.press("slash", *"a-r")
        await pilot.pause()
        assert [s.name for s in table.shown()] == ["a-run"]
        await pilot.press("enter")  # back to the table
        await pilot.press("space")  # marked for the compare screen
        assert table.marked == [table.shown()[0].id]
        assert str(table.get_row_at(0)[0]).startswith("● ")
        app.query_one("#results-filter", Input).value = ""
        await pilot.pause()
        assert len(table.shown()) == 2
        assert table.marked == [s.id for s in table.shown() if s.name == "a-run"]


async def test_the_queue_runs_in_order(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        set_fields(app, **TINY)
        for seed in ("1", "2", "3"):
            set_fields(app, seed=seed)
            app.action_run()  # three queued before the first can finish
        assert app.runs.current is not None and len(app.runs.waiting) == 2
        app.update_queue_bar()
        assert "queued (2)" in str(app.query_one("#queue").render())
        await wait_idle(pilot, app)
        seeds = [s.config.seed for s in app.query_one(ResultsTable).shown()]
        assert seeds == [1, 2, 3]


async def test_cancel_records_a_cancelled_run_and_clear_empties_the_queue(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        set_fields(app, epochs="500", rounds="2")
        await pilot.press("ctrl+r", "ctrl+r")
        await wait_until(pilot, lambda: len(app.query_one(LiveView).curves) > 0)
        await pilot.press("ctrl+l")
        assert not app.runs.waiting
        started = time.monotonic()
        await pilot.press("ctrl+b")
        await wait_idle(pilot, app)
        assert time.monotonic() - started < 10  # stopped, not trained on (500 epochs would take minutes)
        (summary,) = app.query_one(ResultsTable).summaries.values()
        assert summary.status == "cancelled"
        assert summary.path is not None and (summary.path / "history.csv").read_text().count("\n") > 1


async def test_a_cancelled_run_stays_in_the_live_view_beside_the_next(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        set_fields(app, epochs="500", rounds="2")
        await pilot.press("ctrl+r")
        set_fields(app, **TINY)
        await pilot.press("ctrl+r")
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: len(live.curves) > 0)
        await pilot.press("ctrl+b")
        await wait_idle(pilot, app)
        assert [run.status for run in live.runs.values()] == ["cancelled", "done"]
        assert all(len(run.curves) for run in live.runs.values())  # the cancelled run's curves are still drawn
        live.update_text(force=True)
        assert "(cancelled)" in str(app.query_one("#live-title").render())
        assert len({run.color for run in live.runs.values()}) == 2
        # a run started after everything ended starts the view afresh
        await pilot.press("ctrl+r")
        await wait_idle(pilot, app)
        assert [run.status for run in live.runs.values()] == ["done"]


async def test_a_failing_run_is_a_failed_row_and_the_app_goes_on(make_app, monkeypatch):
    import workbench.engine.stacked as batched

    real = batched.loss_gradients
    monkeypatch.setattr(batched, "loss_gradients", lambda *a, **k: [None if t is None else t * float("nan") for t in real(*a, **k)])
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        set_fields(app, **TINY)
        await pilot.press("ctrl+r")
        await wait_idle(pilot, app)
        (summary,) = app.query_one(ResultsTable).summaries.values()
        assert summary.status == "failed" and "nan" in summary.reason
        assert any(n.severity == "error" for n in app._notifications)
        monkeypatch.setattr(batched, "loss_gradients", real)
        await pilot.press("ctrl+r")
        await wait_idle(pilot, app)
        assert sorted(s.status for s in app.query_one(ResultsTable).summaries.values()) == ["done", "failed"]


async def test_unavailable_cuda_is_shown_and_refused(make_app, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.query_one(ConfigForm)
        device_labels = lambda: [str(option[0]) for option in form.query_one("#f-device", Select)._options]  # noqa: E731
        # the devices are said once torch has loaded, after the first screen: its worker may not have started yet
        await wait_until(pilot, lambda: any("unavailable" in label for label in device_labels()))
        form.query_one("#f-device", Select).value = "cuda"
        await pilot.pause()
        assert "device" in form.read()[1]
        await pilot.press("ctrl+r")
        assert app.runs.current is None


async def test_export_writes_the_rows_shown(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        set_fields(app, **TINY)
        await pilot.press("ctrl+r", "ctrl+r")
        await wait_idle(pilot, app)
        await pilot.press("ctrl+o")
        await pilot.pause()
        rows = list(csv.DictReader((tmp_path / "export.csv").open()))
        assert [r["id"] for r in rows] == [s.id for s in app.query_one(ResultsTable).shown()]
        assert any(str(tmp_path / "export.csv") in n.message for n in app._notifications)
        # a second export asks before it replaces the first: no, then yes
        (tmp_path / "export.csv").write_text("kept\n")
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")
        await pilot.pause()
        assert (tmp_path / "export.csv").read_text() == "kept\n"
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert len(list(csv.DictReader((tmp_path / "export.csv").open()))) == 2


async def test_details_show_rounds_and_load_the_config(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        set_fields(app, **TINY, seed="9")
        await pilot.press("ctrl+r")
        await wait_idle(pilot, app)
        set_fields(app, hl="99")
        await pilot.press("f3")
        table = app.query_one(ResultsTable)
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RunDetails)
        assert app.screen.query_one("#details-rounds", DataTable).row_count == 2
        await pilot.press("l")
        await pilot.pause()
        config, _ = app.query_one(ConfigForm).read()
        assert config.hl == 16 and config.seed == 9


async def test_escape_closes_the_key_panel(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.action_show_help_panel()
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        await pilot.press("escape")
        await pilot.pause()
        assert not app.screen.query("HelpPanel")


async def test_loading_a_run_into_the_form_names_its_preset_in_the_picker(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.query_one(ConfigForm)
        form.load_preset("table2-fcn-ws")
        await pilot.pause()
        set_fields(app, **TINY)  # an edited row of table2-fcn-ws
        await pilot.press("ctrl+r")
        await wait_idle(pilot, app)
        form.load_preset("table2-cnn-aux")  # the form moves on to another preset
        await pilot.pause()
        await pilot.press("f3")
        app.query_one(ResultsTable).focus()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause(0.3)
        assert form.query_one("#preset", Select).value == "table2-fcn-ws"  # the picker and the line agree
        status = str(form.query_one("#preset-status").render())
        assert "table2-fcn-ws" in status and "edited" in status and "table2-cnn-aux" not in status
        config, _ = form.read()
        assert config.subnet == "fcn" and config.hl == 16 and config.epochs == 2  # the run's config, kept


async def test_quit_during_a_run_confirms_then_stops_the_run_and_ends(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        set_fields(app, epochs="500")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(app.query_one(LiveView).curves) > 0)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        started = time.monotonic()
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, timeout=10)
        assert time.monotonic() - started < 10  # the app ends instead of hanging on the run
    (run,) = list((tmp_path / "runs").iterdir())
    # a loaded machine may end the app before the training thread has written the record: the process waits for
    # that thread before it exits (as the pty test sees), so here the test waits for it
    deadline = time.monotonic() + 60
    while not (run / "summary.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    # the cancelled record, and where its training stood (to continue it: test_resume)
    assert sorted(p.name for p in run.iterdir()) == ["history.csv", "resume.npz", "summary.json"]
    assert '"status": "cancelled"' in (run / "summary.json").read_text()


async def test_command_palette_offers_every_action(make_app):
    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(120, 40)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Run", "Cancel run", "Run all of Table II", "Export runs to CSV", "Clear queue",
                      "Load preset: table2-fcn-ws-aux"):
            assert title in titles


async def test_usable_at_80_by_24(make_app):
    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.has_class("-narrow")
        form = app.query_one("#form")
        # the form takes the whole width and every setting is on screen without scrolling; only the notebook
        # fields (name, tags, note) lie below, where the form scrolls to when they get the focus
        assert form.region.width >= 78 and form.scroll_y == 0
        visible = form.region
        from workbench.paper.config import FIELDS

        for key in FIELDS:
            field = form.query_one(f"#f-{key}").region
            assert field.height == 1 and visible.contains_region(field), key
        assert not visible.contains_region(form.query_one("#f-note").region)
        form.query_one("#f-note").focus()
        await pilot.pause()
        await pilot.pause(0.3)
        assert form.region.contains_region(form.query_one("#f-note").region)
        footer = "".join(str(k.render()) for k in app.query("FooterKey"))
        for key in ("f1", "f2", "f3", "f4"):
            assert key in footer
        await pilot.press("f3")
        await pilot.pause()
        assert not form.display or form.region.width == 0
        table = app.query_one("#results-table")
        assert table.region.width >= 78
        await pilot.press("f1")
        await pilot.pause()
        assert app.query_one("#form").region.width >= 78


def test_the_first_screen_needs_no_torch():
    code = ("import sys, asyncio\n"
            "from workbench.tui.app import WorkbenchApp\n"
            "async def main():\n"
            "    app = WorkbenchApp(load_digits_at_start=False)\n"
            "    async with app.run_test(size=(120, 40)) as pilot:\n"
            "        await pilot.pause()\n"
            "        assert 'torch' not in sys.modules, 'torch was imported'\n"
            "asyncio.run(main())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


async def test_f2_and_f3_switch_views_whatever_has_the_focus(make_app):
    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        tabs = app.query_one("#tabs")
        for key, tab in (("f3", "results"), ("f2", "live"), ("f3", "results"), ("slash", "results"), ("f2", "live")):
            await pilot.press(key)
            await pilot.pause()
            assert tabs.active == tab, key


def go_to_row(table, name: str) -> None:
    table.move_cursor(row=[s.name for s in table.shown()].index(name))


async def compare_marked(pilot, app, names):
    """Marks the named runs in the results table, opens the compare screen and waits for its records."""
    from workbench.tui.compare import CompareScreen

    table = app.query_one(ResultsTable)
    for name in names:
        go_to_row(table, name)
        await pilot.press("space")
    await pilot.press("c")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, CompareScreen)
    await wait_until(pilot, screen.loaded.is_set)  # read off the UI thread
    return screen


@pytest.fixture
def saved_runs(tmp_path, source):
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    base = RunConfig(hl=16, c_hl=8, rounds=3, epochs=2, pairs=100, batch_size=20, device="cpu")
    configs = {"plain": base.replace(aux_loss=False, weight_sharing=False), "both": base,
               "both-seed5": base.replace(seed=5)}
    return [save_run(result, name, root=tmp_path / "runs")
            for name, result in zip(configs, run_configs(list(configs.values()), source))]


async def test_the_compare_screen_from_marked_runs(make_app, saved_runs, tmp_path):
    from workbench.tui.compare import CompareScreen

    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3", "c")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)  # nothing marked: a warning, no screen
        assert any("mark two or more" in n.message for n in app._notifications)
        screen = await compare_marked(pilot, app, ("plain", "both"))
        await pilot.pause()
        assert [s.name for s in screen.summaries] == ["plain", "both"]
        assert "plain" in str(screen.query_one("#compare-legend").render())
        pairs = screen.query_one("#c-pairs", DataTable)
        assert pairs.row_count == 1 and "paired" == str(pairs.get_row_at(0)[6])  # same seed: paired
        assert str(pairs.get_row_at(0)[4]) == "—"  # one pair tested: no Holm adjustment
        differs = str(screen.query_one("#compare-differs").render())
        assert "WS on / off" not in differs and "WS off / on" in differs and "aux off / on" in differs
        assert "weights " in differs and "(all)" not in differs  # sharing changes the weights: each is given
        assert len(screen.heatmaps) == 2
        await pilot.press("e")
        assert "plain: error % by digit pair" in str(screen.query_one("#c-heat-a").render())
        await pilot.press("x")
        assert "both − plain" not in str(screen.query_one("#c-heat-a").render())
        assert "plain − both: error % points" in str(screen.query_one("#c-heat-a").render())
        await pilot.press("ctrl+e")
        await pilot.pause()
        (figure,) = tmp_path.glob("comparison-*.png")
        assert figure.stat().st_size > 10_000
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)


async def test_unpaired_runs_say_why_on_the_compare_screen(make_app, saved_runs):
    from workbench.tui.compare import CompareScreen

    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.notebook.open_compare([saved_runs[1], saved_runs[2]])
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        await wait_until(pilot, app.screen.loaded.is_set)
        await pilot.pause()
        assert str(app.screen.query_one("#c-pairs", DataTable).get_row_at(0)[6]) == "Welch: different seeds"


async def test_details_show_what_the_network_gets_wrong(make_app, saved_runs):
    from workbench.tui.details import RunDetails

    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        go_to_row(app.query_one(ResultsTable), "both")  # auxiliary loss on
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunDetails) and screen.summary.name == "both"
        await pilot.press("e")
        assert "error % by digit pair, 300 test pairs of 3 rounds" in str(screen.query_one("#errors-heatmap").render())
        assert "per-digit accuracy" in str(screen.query_one("#errors-confusion").render())
        await pilot.press("m")
        await pilot.pause()
        wrong = screen.predictions.wrong.sum()
        assert len(screen.query("#wrong-gallery .pair")) == min(24, wrong)
        await pilot.press("d")
        await pilot.pause()
        assert "round 0: its first 8 test pairs" in str(screen.query_one("#data-note").render())
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert "round 1:" in str(screen.query_one("#data-note").render())
        assert len(screen.query("#data-gallery .pair")) == 8
        await pilot.press("escape")
        go_to_row(app.query_one(ResultsTable), "plain")  # no auxiliary loss, no confusion
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("e")
        assert "no auxiliary loss" in str(app.screen.query_one("#errors-confusion").render())


async def test_what_waits_trains_together_with_the_numbers_each_gets_alone(make_app, source):
    from workbench.engine import run_configs

    base = RunConfig(hl=16, c_hl=8, rounds=2, epochs=2, pairs=100, batch_size=20, device="cpu")
    configs = [base, base.replace(alpha=0.3), base.replace(subnet="cnn", hl=8)]
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        for i, config in enumerate(configs):
            app.enqueue(NamedRun(f"run{i}", config), start=False)
        app.start_next()
        assert [item.name for item in app.runs.running] == ["run0", "run1", "run2"]  # one group
        assert "running together (3)" in app.runs.status_line()
        await wait_idle(pilot, app)
        live = app.query_one(LiveView)
        assert [run.status for run in live.runs.values()] == ["done"] * 3
        shown = {s.name: s for s in app.query_one(ResultsTable).summaries.values()}
    for i, config in enumerate(configs):
        (alone,) = run_configs([config], source)
        assert shown[f"run{i}"].round_acc == alone.test_accuracies()


async def test_cancelling_one_run_of_a_group_keeps_the_others(make_app, source):
    from workbench.engine import run_configs
    from workbench.tui.confirm import Choose

    long_run = RunConfig(hl=16, c_hl=8, rounds=2, epochs=1000, pairs=500, batch_size=5, device="cpu")
    short_run = RunConfig(subnet="cnn", hl=8, c_hl=8, rounds=2, epochs=3, pairs=100, batch_size=20, device="cpu")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.enqueue(NamedRun("long", long_run), start=False)
        app.enqueue(NamedRun("short", short_run), start=False)
        app.start_next()
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: len(live.runs[1].curves) > 0)
        await pilot.press("ctrl+b")  # two train: which one?
        await pilot.pause()
        assert isinstance(app.screen, Choose)
        await pilot.press("enter")  # the first: "long"
        await wait_idle(pilot, app, timeout=120)  # long (minutes of training) stops once short has finished
        runs = {s.name: s for s in app.query_one(ResultsTable).summaries.values()}
    assert runs["long"].status == "cancelled" and runs["short"].status == "done"
    (alone,) = run_configs([short_run], source)
    assert runs["short"].round_acc == alone.test_accuracies()
    history = (runs["long"].path / "history.csv").read_text().splitlines()[1:]
    # kept: exactly the epochs reported (and shown) before the cancel, never epochs it trained unseen after it,
    # and far from the 1000 it would have trained
    assert 0 < len(history) == len(live.runs[1].curves) < 2 * 1000


async def test_compare_the_table_ii_rows_takes_the_latest_run_of_each_row(make_app, source, tmp_path):
    from workbench.engine import run_configs
    from workbench.paper.presets import TABLE_II, Preset
    from workbench.records.store import save_run
    from workbench.tui.compare import CompareScreen

    tiny = RunConfig(hl=16, c_hl=8, rounds=2, epochs=1, pairs=100, batch_size=20, device="cpu")
    rows = {TABLE_II[0]: tiny.replace(aux_loss=False), TABLE_II[3]: tiny}
    results = run_configs(list(rows.values()) + [tiny.replace(hl=8)], source)
    for (name, _), result in zip(rows.items(), results):
        save_run(result, name, name, root=tmp_path / "runs")
    save_run(results[2], TABLE_II[3] + " (edited)", TABLE_II[3], root=tmp_path / "runs")  # no longer the row
    app = make_app(load_digits_at_start=False)
    app.presets.update({name: Preset(name, name, config) for name, config in rows.items()})
    async with app.run_test(size=(120, 40)) as pilot:
        app.notebook.compare_table2()
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        assert [s.name for s in app.screen.summaries] == [TABLE_II[0], TABLE_II[3]]
        notes = [str(n.message) for n in app._notifications if n.title == "Compare"]  # the rows left out, named
        assert any("no finished run of" in n and TABLE_II[1] in n and TABLE_II[3] not in n for n in notes), notes


async def test_a_refusal_names_the_fields_by_their_labels(make_app):
    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        set_fields(app, hl="x", c_hl="y", lr_decay="2")
        await pilot.press("ctrl+r")
        await pilot.pause()
        (note,) = [n for n in app._notifications if n.title == "Cannot run"]
        assert "fix HL, C-HL, LR decay first" in str(note.message) and "c_hl" not in str(note.message)
        assert app.runs.idle


async def test_pairs_the_digits_cannot_supply_are_refused_in_the_form(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.query_one(ConfigForm)
        await wait_until(pilot, lambda: form.digits is not None)
        set_fields(app, pairs="5000")
        message = str(form.query_one("#e-pairs").render())
        assert "5000 pairs need 10000 distinct digits" in message and "at most 1000" in message
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.runs.idle and not app.query_one(ResultsTable).summaries  # no failed row: nothing queued
        assert any("Pairs" in str(n.message) for n in app._notifications if n.title == "Cannot run")
        set_fields(app, pairs="1000")
        assert not str(form.query_one("#e-pairs").render())


async def test_a_cancelled_run_shows_how_far_it_got_not_a_full_bar(make_app):
    from textual.widgets import ProgressBar

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        set_fields(app, **{**TINY, "epochs": "300", "rounds": "1", "pairs": "500", "batch_size": "5"})
        await pilot.press("ctrl+r")
        live = app.query_one(LiveView)
        await wait_until(pilot, lambda: live.runs and len(next(iter(live.runs.values())).curves) > 0)
        await pilot.press("ctrl+b")
        await wait_idle(pilot, app)
        bar = app.query_one("#live-progress", ProgressBar)
        (summary,) = app.query_one(ResultsTable).summaries.values()
        assert summary.status == "cancelled"
        assert 0 < bar.percentage < 0.5  # cancelled early: the bar says how far, never 100 %


async def test_plot_titles_fit_their_plots_instead_of_vanishing(make_app):
    from textual_plotext import PlotextPlot

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        for alpha in (0.2, 0.5, 0.8):  # three runs: the accuracy plot's title is its longest
            app.enqueue(NamedRun(f"alpha {alpha}", RunConfig(hl=16, c_hl=8, rounds=2, epochs=2, pairs=100,
                                                              batch_size=20, alpha=alpha, device="cpu")), start=False)
        app.start_next()
        await wait_idle(pilot, app)
        live = app.query_one(LiveView)
        live.redraw()
        await pilot.pause(0.3)
        for plot_id, title in (("#loss-plot", "train loss"), ("#acc-plot", "test accuracy %")):
            plot = app.query_one(plot_id, PlotextPlot)
            plot.plt.plotsize(plot.size.width, plot.size.height)
            drawn = re.sub(r"\x1b\[[0-9;]*m", "", plot.plt.build())
            assert title in drawn, plot_id  # shortened to fit, never dropped


async def test_at_80x24_an_error_stays_in_its_fields_cell_and_the_footer_is_clean(make_app):
    from textual.widgets import Footer

    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(ConfigForm)
        before = {k: form.query_one(f"#row-{k}").region for k in ("hl", "kl", "bc", "k")}
        set_fields(app, hl="x")
        await pilot.pause()
        after = {k: form.query_one(f"#row-{k}").region for k in ("hl", "kl", "bc", "k")}
        error = form.query_one("#e-hl").region
        assert after["kl"].y == after["hl"].y and after["kl"].x == before["kl"].x  # KL stays beside HL
        assert after["bc"].x == before["bc"].x and after["k"].x == before["k"].x  # BC and K keep their columns
        assert error.x >= after["hl"].x and error.right <= after["kl"].x  # the error under HL, in HL's column
        assert app.query_one(Footer).show_command_palette is False  # no '^p palettep' under the keys


async def test_at_80x24_the_compare_screen_shows_whole_heatmaps_and_every_paired_column(make_app, source, tmp_path):
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    config = RunConfig(hl=16, c_hl=8, rounds=3, epochs=1, pairs=100, batch_size=20, device="cpu")
    for name, cfg in (("a rather long run name", config), ("another long run name", config.replace(aux_loss=False))):
        save_run(run_configs([cfg], source)[0], name, root=tmp_path / "runs")
    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(ResultsTable)
        table.marked.extend(table.summaries)
        app.notebook.compare()
        await pilot.pause(1.0)
        await pilot.press("e")
        await pilot.pause(0.5)
        heat_a, heat_b = app.screen.query_one("#c-heat-a"), app.screen.query_one("#c-heat-b")
        assert heat_b.region.x == heat_a.region.x and heat_a.region.right <= 80  # one above the other, whole
        await pilot.press("p")
        await pilot.pause(0.5)
        pairs = app.screen.query_one("#c-pairs", DataTable)
        assert sum(c.get_render_width(pairs) for c in pairs.columns.values()) <= 80  # the pairing column in view


async def test_errors_with_three_runs_lets_you_choose_the_two(make_app, saved_runs):
    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        screen = await compare_marked(pilot, app, ("plain", "both", "both-seed5"))
        await pilot.press("e")
        heat = lambda side: str(screen.query_one(f"#c-heat-{side}").render())  # noqa: E731
        assert "plain:" in heat("a") and "both:" in heat("b")
        assert "1 / 2: another run" in str(screen.query_one("#c-errors-note").render())
        await pilot.press("2")
        assert "plain:" in heat("a") and "both-seed5:" in heat("b")
        await pilot.press("1")  # the next run on the left, never the one on the right
        assert "both:" in heat("a") and "both-seed5:" in heat("b")
        await pilot.press("x")
        assert "both − both-seed5" in heat("a")


async def test_the_compare_curves_smooth_go_per_round_and_log_on_keys(make_app, saved_runs):
    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f3")
        screen = await compare_marked(pilot, app, ("plain", "both"))
        from workbench.tui.live import ANSI

        def title(plot_id: str) -> str:  # the first line plotext draws at the plot's size: its title
            plot = screen.query_one(plot_id)
            plot.plt.plotsize(plot.size.width, plot.size.height)
            return ANSI.sub("", plot.plt.build()).splitlines()[0].strip()

        assert "mean ± std over rounds" in title("#c-loss")
        await pilot.press("m")
        assert "EMA 0.6" in title("#c-test") and "EMA 0.6" in title("#c-loss")
        await pilot.press("m", "g", "r")
        assert "every round" in title("#c-loss") and "EMA 0.9" in title("#c-loss") and "log scale" in title("#c-loss")
        assert "log scale" not in title("#c-test")  # accuracy stays linear
        await pilot.press("m", "g", "r")
        assert title("#c-loss").startswith("train loss: mean ± std over rounds") and "EMA" not in title("#c-loss")


async def test_w_draws_the_compare_curves_against_each_runs_train_time(make_app, saved_runs):
    from workbench.analysis.curves import Curves
    from workbench.records.store import readable_history

    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f3")
        screen = await compare_marked(pilot, app, ("plain", "both"))
        plot = screen.query_one("#c-test")
        assert plot.plt.monitor.xlabel[0] == "epoch"
        await pilot.press("w")
        assert plot.plt.monitor.xlabel[0] == "seconds trained"
        means = plot.plt.monitor.x[2::3]  # per run: the band's top and bottom, then its mean
        for summary, xs in zip([s for s in saved_runs if s.name in ("plain", "both")], means):
            axis = Curves.of(readable_history(summary)).time_axis(summary.wall_time)
            assert xs == pytest.approx(list(axis.values())) and xs[-1] == pytest.approx(summary.wall_time)
        await pilot.press("w")
        assert plot.plt.monitor.xlabel[0] == "epoch" and plot.plt.monitor.x[2] == [1, 2]


async def test_every_pair_of_seven_runs_is_reachable_in_the_paired_table(make_app, saved_runs):
    import dataclasses

    from workbench.tui.compare import CompareScreen

    runs = [dataclasses.replace(saved_runs[i % 3], id=f"20261202-00000{i}-abcdef", name=f"run {i}")
            for i in range(7)]
    app = make_app(load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.notebook.open_compare(runs)
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        await wait_until(pilot, screen.loaded.is_set)
        await pilot.press("p")
        await pilot.pause()
        pairs = screen.query_one("#c-pairs", DataTable)
        assert pairs.row_count == 21 and pairs.has_focus
        assert "21 pairs of runs · ↑ ↓ PgUp PgDn ctrl+Home ctrl+End" in str(screen.query_one("#c-pairs-count").render())
        assert pairs.max_scroll_y > 0  # more rows than fit: the table scrolls, the screen does not cut them
        await pilot.press("pagedown")
        await pilot.pause()
        assert pairs.cursor_row > 5 and pairs.scroll_y > 0
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert pairs.cursor_row == 20 and pairs.scroll_y == pairs.max_scroll_y
        assert {"run 5", "run 6"} == set(str(pairs.get_row_at(20)[0]).split(" − "))  # the last pair
        holm = [str(pairs.get_row_at(r)[4]) for r in range(21)]
        assert all(h != "—" for h in holm)  # 21 tests: every one has its Holm-adjusted p


async def test_the_live_bar_never_goes_back_when_one_run_of_a_group_stops_and_a_continued_run_draws_from_epoch_1(
        tmp_path):
    from textual.widgets import ProgressBar

    from workbench.engine import EpochRecord
    from workbench.tui.app import WorkbenchApp

    def records(epochs, rounds=1):
        return [EpochRecord(0, r, e, 0.5, 0.8, 0.7 + e / 100, None, 1e-3, 0.1) for e in epochs for r in range(rounds)]

    app = WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "e.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        live = app.query_one(LiveView)
        bar = app.query_one("#live-progress", ProgressBar)
        live.start("a", 10, 1)
        live.start("b", 10, 2, prior=records(range(1, 5)))  # continues after epoch 4
        assert len(live.runs[2].curves) == 4 and bar.progress == 4  # drawn from epoch 1, counted as done
        live.add(records([1, 2]), 1)
        live.update_text(force=True)
        before = bar.progress
        live.finish("cancelled", "", 1)
        assert bar.progress >= before and bar.progress == 10 + 4  # the stopped run's part is over, not undone
        live.add(records(range(5, 11)), 2)
        live.finish("done", "", 2)
        await pilot.pause()
        assert bar.percentage == 1  # the group ended with a done run: a full bar


async def test_w_in_the_live_view_draws_the_runs_against_the_seconds_they_trained(tmp_path):
    from workbench.engine import EpochRecord
    from workbench.tui.app import WorkbenchApp

    def records(epochs, seconds):
        return [EpochRecord(0, r, e, 0.5, 0.8, 0.7 + e / 100, None, 1e-3, seconds) for e in epochs for r in range(2)]

    app = WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "e.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        live = app.query_one(LiveView)
        live.start("quick", 6, 1)
        live.add(records([1, 2, 3], 0.5), 1)
        live.start("slow", 6, 2)
        live.add(records([1, 2, 3], 2.0), 2)
        await pilot.press("f2")
        assert live.has_focus  # the key is the live view's: f2 puts it in front of its keys
        await pilot.press("w")
        await pilot.pause()
        acc = app.query_one("#acc-plot").plt.monitor
        assert acc.xlabel[0] == "seconds trained"
        # the rounds agree, so no band: one line a run, each at the seconds its own epochs ended
        assert acc.x == [pytest.approx([0.5, 1.0, 1.5]), pytest.approx([2.0, 4.0, 6.0])]
        await pilot.press("w")
        await pilot.pause()
        acc = app.query_one("#acc-plot").plt.monitor  # a redraw starts a new figure
        assert acc.xlabel[0] == "epoch" and acc.x == [[1, 2, 3], [1, 2, 3]]
