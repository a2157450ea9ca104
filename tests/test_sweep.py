"""Sweeps: spec errors, every grid point once, workers sharing a journal, resuming, retrying a dead worker's trial."""

import multiprocessing
import os
import re
import socket
import threading
import uuid

import optuna
import pytest
from sweep_specs import STACKING_SPEC, tiny_spec_text

from workbench.cli.entry import main
from workbench.paper.config import ConfigError
from workbench.sweep import (all_trials, best_params, find_spec, load_spec, open_storage, point_key, run_worker,
                             stage_study_name, start_workers)

TINY_SPEC = tiny_spec_text()


@pytest.fixture
def tiny_spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC)
    return load_spec(path)


def counted(trials, stage):
    return [t for t in trials if t.stage == stage and t.state == "complete"]


def test_shipped_specs_follow_the_papers_stages():
    fcn = load_spec(find_spec("table3-fcn"))
    assert [sorted(s.grid or s.ranges) for s in fcn.stages] == [["hl", "kl"], ["c_hl", "c_kl"], ["alpha"]]
    assert fcn.stages[0].grid["hl"] == [32, 64, 128, 256, 512] and fcn.paper.score == 0.9282
    cnn = load_spec(find_spec("table4-cnn"))
    assert [sorted(s.grid or s.ranges) for s in cnn.stages] == [["hl", "kl"], ["bc"], ["c_hl", "c_kl", "k"], ["alpha"]]
    assert cnn.stages[1].grid["bc"] == [4, 8, 16, 24, 48]


@pytest.mark.parametrize("change, key", [
    (('grid = { hl = [8, 16], c_hl = [4, 8] }', 'grid = { width = [1] }'), "stage[0].grid.width"),
    (('grid = { hl = [8, 16], c_hl = [4, 8] }', 'grid = { hl = [] }'), "stage[0].grid.hl"),
    (('grid = { hl = [8, 16], c_hl = [4, 8] }', 'grid = { hl = [8, 0] }'), "stage[0].grid.hl"),
    (('grid = { hl = [8, 16], c_hl = [4, 8] }', 'grid = { bc = [4] }'), "stage[0].grid.bc"),
    (('range = { alpha = [0.1, 0.9] }', 'range = { alpha = [0.1, 1.9] }'), "stage[1].range.alpha"),
    (('range = { alpha = [0.1, 0.9] }', 'range = { hl = [1.0, 9.0] }'), "stage[1].range.hl"),
    (('trials = 2', ''), "stage[1].trials"),
    (('validation_pairs = 40', 'validation_pairs = "many"'), "validation_pairs"),
    (('[base]', '[bases]'), "bases"),
    (('validation_pairs = 40', 'validation_pairs = 1000000'), "validation_pairs"),
    (('final_rounds = 2', 'final_rounds = 2\n[paper]\nscore = 92.82'), "paper.score"),
    (('final_rounds = 2', 'final_rounds = 2\n[paper]\nscore = 0.9\nsorce = 1'), "paper.sorce"),
    (('title = "tiny"', 'title = ["a"]'), "title"),
    (('title = "tiny"', 'title = "two\\nlines"'), "title"),
    (('title = "tiny"', 'title = ""'), "title"),
    (('name = "widths"', 'name = 5'), "stage[0].name"),
    (('name = "widths"', 'name = "\\u001b[31mred"'), "stage[0].name"),
])
def test_bad_specs_name_the_file_and_the_key(tmp_path, change, key):
    path = tmp_path / "bad.toml"
    path.write_text(TINY_SPEC.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert err.value.key == key and str(path) in str(err.value)


def test_a_tiny_sweep_runs_every_point_once_and_carries_the_best_on(tiny_spec, tmp_path, source):
    storage_url = str(tmp_path / "s.journal")
    run_worker(tiny_spec, storage_url, "t1", source=source)
    trials = all_trials(tiny_spec, open_storage(storage_url), "t1")
    grid = counted(trials, 0)
    assert sorted(point_key(t.params) for t in grid) == sorted(
        point_key({"hl": h, "c_hl": c}) for h in (8, 16) for c in (4, 8))
    assert all(t.val_mean is not None and t.test_mean is not None for t in grid)
    assert len(counted(trials, 1)) == 2
    # stage 2 trained on stage 1's winner
    best = best_params(grid)
    study = optuna.load_study(study_name=stage_study_name("t1", 1, tiny_spec.stages[1]),
                              storage=open_storage(storage_url))
    assert all(0.1 <= t.params["alpha"] <= 0.9 for t in study.trials) and best is not None


def test_resuming_continues_without_repeating(tiny_spec, tmp_path, source):
    storage_url = str(tmp_path / "s.journal")
    cancel = threading.Event()
    seen = []

    def on_trial(trial):
        seen.append(trial)
        if len(seen) == 2:
            cancel.set()

    run_worker(tiny_spec, storage_url, "t2", source=source, cancel=cancel, on_trial=on_trial, batch=2)
    assert len(counted(all_trials(tiny_spec, open_storage(storage_url), "t2"), 0)) == 2
    run_worker(tiny_spec, storage_url, "t2", source=source, batch=2)
    trials = all_trials(tiny_spec, open_storage(storage_url), "t2")
    grid = counted(trials, 0)
    assert len(grid) == 4 and len({point_key(t.params) for t in grid}) == 4


def test_a_dead_workers_trial_is_failed_and_retried(tiny_spec, tmp_path, source):
    storage_url = str(tmp_path / "s.journal")
    storage = open_storage(storage_url)
    stage = tiny_spec.stages[0]
    sampler = optuna.samplers.GridSampler(stage.grid, seed=0)
    study = optuna.create_study(study_name=stage_study_name("t3", 0, stage), storage=storage,
                                direction="maximize", sampler=sampler)
    trial = study.ask()
    params = {p: trial.suggest_categorical(p, v) for p, v in stage.grid.items()}
    dead = multiprocessing.get_context("spawn").Process(target=os.getpid)
    dead.start()
    dead.join()
    trial.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")  # it died mid-trial
    run_worker(tiny_spec, storage_url, "t3", source=source)
    trials = all_trials(tiny_spec, open_storage(storage_url), "t3")
    same = [t for t in trials if t.stage == 0 and t.params == params]
    assert sorted(t.state for t in same) == ["complete", "fail"]
    assert len(counted(trials, 0)) == 4


def dead_tag() -> str:
    dead = multiprocessing.get_context("spawn").Process(target=os.getpid)
    dead.start()
    dead.join()
    return f"{socket.gethostname()}:{dead.pid}"


@pytest.mark.parametrize("suggested", [0, 1], ids=["before its params", "between its params"])
def test_a_trial_killed_before_all_its_params_were_drawn_neither_crashes_a_worker_nor_loses_its_point(
        tiny_spec, tmp_path, source, suggested):
    """Issue 22, item 1: a cancel that ended a worker between a trial's start and its last parameter left a retry
    without its grid point, and the worker that drew it died of Optuna's "All parameters must be specified"."""
    storage_url = str(tmp_path / "s.journal")
    stage = tiny_spec.stages[0]
    study = optuna.create_study(study_name=stage_study_name("t5", 0, stage), storage=open_storage(storage_url),
                                direction="maximize", sampler=optuna.samplers.GridSampler(stage.grid, seed=0))
    trial = study.ask()
    trial.set_user_attr("worker", dead_tag())
    for param, values in list(stage.grid.items())[:suggested]:
        trial.suggest_categorical(param, values)
    run_worker(tiny_spec, storage_url, "t5", source=source)
    trials = all_trials(tiny_spec, open_storage(storage_url), "t5")
    grid = counted(trials, 0)
    assert sorted(point_key(t.params) for t in grid) == sorted(
        point_key({"hl": h, "c_hl": c}) for h in (8, 16) for c in (4, 8))
    assert len(counted(trials, 1)) == 2


def test_a_trial_whose_worker_died_before_naming_itself_is_reaped_not_waited_for(tiny_spec, tmp_path, source,
                                                                                  monkeypatch):
    import workbench.sweep.worker as worker

    storage_url = str(tmp_path / "s.journal")
    stage = tiny_spec.stages[0]
    study = optuna.create_study(study_name=stage_study_name("t6", 0, stage), storage=open_storage(storage_url),
                                direction="maximize", sampler=optuna.samplers.GridSampler(stage.grid, seed=0))
    study.ask()  # started, never tagged: its worker was ended in between
    monkeypatch.setattr(worker, "UNTAGGED_GRACE_S", 0.0)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (run_worker(tiny_spec, storage_url, "t6", source=source), done.set()),
                              daemon=True)
    thread.start()
    thread.join(240)
    assert done.is_set()  # it did not wait for the orphan forever
    assert len(counted(all_trials(tiny_spec, open_storage(storage_url), "t6"), 0)) == 4


def test_a_trial_that_draws_a_point_a_later_trial_has_finished_gives_way(tiny_spec, tmp_path, source):
    """Under load a trial may draw its grid point after a later-numbered trial has finished with it: the finished
    one owns the point (by the numbers alone both counted, and a 2-worker sweep had five trials of four points)."""
    from workbench.sweep.batch import Asked, give_way

    storage = open_storage(str(tmp_path / "s.journal"))
    stage = tiny_spec.stages[0]
    study = optuna.create_study(study_name=stage_study_name("t7", 0, stage), storage=storage, direction="maximize")
    early, late = study.ask(), study.ask()
    point = {"hl": 8, "c_hl": 4}
    for name, value in point.items():
        late.suggest_categorical(name, stage.grid[name])
    late_params = {k: late.params[k] for k in point}
    study.tell(late, 0.5)
    assert give_way(study, Asked(early, late_params))
    frozen = study.get_trials(deepcopy=False)[early.number]
    assert frozen.state.name == "PRUNED" and frozen.user_attrs["duplicate_of"] == late.number


@pytest.mark.parametrize("stacking", [False, True], ids=["widths one at a time", "a stackable grid in batches"])
def test_two_worker_processes_share_a_journal_without_duplicates(tiny_spec, tmp_path, source, stacking):
    from workbench.engine import run_configs

    if stacking:  # issue 21: each worker takes half the four points at a time, as one stack
        (tmp_path / "stacking.toml").write_text(STACKING_SPEC)
        tiny_spec = load_spec(tmp_path / "stacking.toml")
    storage_url = str(tmp_path / "s.journal")
    procs = start_workers(tiny_spec, storage_url, "t4", 2)
    for p in procs:
        p.join(240)
    assert [p.exitcode for p in procs] == [0, 0]
    trials = all_trials(tiny_spec, open_storage(storage_url), "t4")
    grid = counted(trials, 0)
    assert len(grid) == 4 and len({point_key(t.params) for t in grid}) == 4
    assert max(t.batch for t in grid) == (2 if stacking else 1)
    for stage in range(1, len(tiny_spec.stages)):
        assert len(counted(trials, stage)) == tiny_spec.stages[stage].size()
    # a trial scores, under --workers 2, what its config scores trained here alone
    for trial in grid:
        alone = run_configs([tiny_spec.base.replace(**trial.params)], source,
                            validation=tiny_spec.validation_pairs)[0]
        assert (trial.val_mean, trial.test_mean) == (alone.val_mean_std()[0], alone.mean_std()[0])


@pytest.mark.postgres
@pytest.mark.xdist_group("postgres")  # one worker: the first to reach a fresh database creates Optuna's tables
@pytest.mark.skipif(not os.environ.get("DIGIT_WORKBENCH_TEST_PG"), reason="no PostgreSQL (.ci/run starts one)")
@pytest.mark.parametrize("stacking", [False, True], ids=["widths one at a time", "a stackable grid in batches"])
def test_two_workers_against_postgresql(tiny_spec, tmp_path, stacking):
    url = os.environ["DIGIT_WORKBENCH_TEST_PG"]
    if stacking:  # issue 21: batches asked by hand beat for their trials, and no point counts twice
        (tmp_path / "stacking.toml").write_text(STACKING_SPEC)
        tiny_spec = load_spec(tmp_path / "stacking.toml")
    study = f"pg-{uuid.uuid4().hex[:8]}"
    procs = start_workers(tiny_spec, url, study, 2)
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    trials = all_trials(tiny_spec, open_storage(url), study)
    grid = counted(trials, 0)
    assert len(grid) == 4 and len({point_key(t.params) for t in grid}) == 4
    assert max(t.batch for t in grid) == (2 if stacking else 1)
    for stage in range(1, len(tiny_spec.stages)):
        assert len(counted(trials, stage)) == tiny_spec.stages[stage].size()


def test_sweep_command_runs_shows_and_exports(tiny_spec, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIGIT_WORKBENCH_RUNS", str(tmp_path / "elsewhere"))  # --runs-dir wins over it
    out, runs = tmp_path / "trials.csv", tmp_path / "runs"
    assert main(["sweep", str(tiny_spec.path), "--study", "cli", "--out", str(out), "--runs-dir", str(runs)]) == 0
    text = capsys.readouterr().out
    assert "chosen on validation" in text
    rows = out.read_text().splitlines()
    assert rows[0].startswith("stage,stage_name,trial,state") and len(rows) == 1 + 6
    assert (runs / "sweeps" / "cli.journal").is_file() and len(list(runs.glob("*/summary.json"))) == 2
    # the same command again: nothing left to search, and the chosen configs were measured: nothing trains again
    assert main(["sweep", str(tiny_spec.path), "--study", "cli", "--out", str(out), "--runs-dir", str(runs)]) == 0
    assert "measured before" in capsys.readouterr().out and len(list(runs.glob("*/summary.json"))) == 2
    assert not (tmp_path / "elsewhere").exists()
    assert main(["sweep", "--show", "cli", "--runs-dir", str(runs)]) == 0
    assert "widths" in capsys.readouterr().out
    assert main(["sweep", "--show", "nothing-here"]) == 2
    assert main(["sweep", str(tiny_spec.path), "--workers", "0"]) == 2
    assert main(["sweep", str(tiny_spec.path), "--workers", "1000"]) == 2  # not 1000 processes of torch
    assert "one per core" in capsys.readouterr().err


@pytest.mark.parametrize("study", ["../../evil", "/tmp/x", ".hidden", "a/b", "x" * 101, ""])
def test_a_study_name_is_a_name_not_a_path(tiny_spec, tmp_path, capsys, monkeypatch, study):
    monkeypatch.setenv("DIGIT_WORKBENCH_RUNS", str(tmp_path / "runs"))
    assert main(["sweep", str(tiny_spec.path), "--study", study]) == 2
    assert main(["sweep", "--show", study]) == 2
    err = capsys.readouterr().err
    assert "--study:" in err and "--show:" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.journal")) and not (tmp_path / "evil").exists()


async def open_sweep_screen(pilot, app, spec=None):
    """The sweep screen (f4), with `spec` chosen when given."""
    from textual.widgets import Select

    from workbench.tui.sweeps import SweepScreen

    await pilot.press("f4")
    await pilot.pause()
    assert isinstance(app.screen, SweepScreen)
    if spec is not None:
        app.screen.query_one("#sweep-spec", Select).value = str(spec.path)
        await pilot.pause()
    return app.screen


async def test_sweep_screen_starts_watches_and_exports(tiny_spec, tmp_path, monkeypatch):
    import time as clock

    from textual.widgets import DataTable, Select

    from workbench.tui.app import WorkbenchApp

    monkeypatch.setenv("DIGIT_WORKBENCH_RUNS", str(tmp_path / "runs"))
    app = WorkbenchApp(runs_root=tmp_path / "runs", load_digits_at_start=False, sweep_specs=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep_screen(pilot, app)
        screen.query_one("#sweep-spec", Select).value = str(tiny_spec.path)
        await pilot.pause()
        assert screen.query_one("#sweep-stages", DataTable).row_count == 2
        grid = str(screen.query_one("#sweep-title").render())
        for stage in tiny_spec.stages:  # the spec's grid is shown before anything starts
            assert f"{stage.name}: " in grid and f"{stage.size()} trials" in grid
        await pilot.press("escape", "f4")  # away and back: the same screen, the spec still chosen
        await pilot.pause()
        assert app.screen is screen and screen.spec is not None
        lines = set()  # what the main screen's bottom line said while the sweep ran: each line it was given
        update_queue_bar = app.update_queue_bar

        def recording() -> None:  # sampling the screen instead missed the short stretches under load
            update_queue_bar()
            lines.add(str(app.query_one("#queue").render()))

        monkeypatch.setattr(app, "update_queue_bar", recording)
        await pilot.click("#sweep-start")
        deadline = clock.monotonic() + 240
        while clock.monotonic() < deadline:
            await pilot.pause(0.2)
            if screen.sweep is not None and not screen.busy and not app.workers:
                break
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        # said while the sweep ran: first where it stood, then the stage, its trials and the best so far
        assert any(line.startswith("sweep tiny running") and line.endswith("(f4)") for line in lines)
        progress = [line for line in lines if "· best validation " in line]
        assert progress and all(re.search(r"sweep tiny running: stage [12]/2 \S+ \d/\d( \(\+\d running\))? · "
                                          r"best validation [0-9.]+( ± [0-9.]+)? % \(f4\)", line)
                                for line in progress), lines
        assert str(app.query_one("#queue").render()) == "queue empty"  # and no longer once it ended
        assert screen.query_one("#sweep-trials", DataTable).row_count == 6
        from textual_plotext import PlotextPlot

        best = screen.query_one("#sweep-best", PlotextPlot).plt
        best.plotsize(60, 12)
        drawn = best.build()
        assert "best validation %" in drawn and "trial" in drawn  # the title fitted to the plot on screen
        param = screen.query_one("#sweep-param-a", PlotextPlot).plt
        param.plotsize(60, 12)
        assert "validation % vs" in param.build()
        # the last stage searched alpha alone: its plot, and no empty box for a second parameter beside it
        assert screen.query_one("#sweep-param-a").display and not screen.query_one("#sweep-param-b").display
        # the chosen configs were measured on test, saved, and joined the results table, as the command does
        from workbench.tui.results import ResultsTable

        finals = [s for s in app.query_one(ResultsTable).summaries.values() if s.name.startswith("tiny after")]
        assert sorted(s.name for s in finals) == ["tiny after alpha", "tiny after widths"]
        assert all(s.status == "done" and len(s.round_acc) == 2 for s in finals)
        assert "chosen configs on test" in str(screen.query_one("#sweep-status").render())
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert (tmp_path / "runs" / "sweeps" / "tiny-trials.csv").exists()


@pytest.mark.parametrize("text, key", [("base = 5\n[[stage]]\nname='x'\ngrid={hl=[8]}\n", "base"),
                                       ("x = " + "[" * 2000 + "]" * 2000 + "\n", "file")])
def test_a_spec_of_the_wrong_shape_is_a_line_not_a_traceback(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert err.value.key == key and str(path) in str(err.value)


def test_a_grid_point_drawn_twice_counts_once_even_when_the_twin_writes_it_late(tiny_spec, tmp_path, source,
                                                                                 monkeypatch):
    """Two workers: the earlier trial draws a grid point but writes it only while the later trial, which drew
    the same point and found no twin when it looked, is training. The later one must give way when it finishes,
    or the stage counts the point twice (seen once in a full test run under load)."""
    from optuna.distributions import CategoricalDistribution

    import workbench.engine as engine

    storage_url = str(tmp_path / "s.journal")
    storage = open_storage(storage_url)
    stage = tiny_spec.stages[0]
    study = optuna.create_study(study_name=stage_study_name("t5", 0, stage), storage=storage,
                                direction="maximize", sampler=optuna.samplers.GridSampler(stage.grid, seed=0))
    twin = study.ask()  # running, its point not written yet
    twin.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    real_run_configs = engine.run_configs
    written = []

    def run_configs(configs, *args, **kwargs):
        if not written:  # the twin writes the point this trial trains, and finishes
            for name, values in stage.grid.items():
                dist = CategoricalDistribution(values)
                storage.set_trial_param(twin._trial_id, name, dist.to_internal_repr(getattr(configs[0], name)), dist)
            study.tell(twin, 0.5)
            written.append(dict((name, getattr(configs[0], name)) for name in stage.grid))
        return real_run_configs(configs, *args, **kwargs)

    monkeypatch.setattr(engine, "run_configs", run_configs)
    run_worker(tiny_spec, storage_url, "t5", source=source)
    trials = all_trials(tiny_spec, open_storage(storage_url), "t5")
    grid = counted(trials, 0)
    assert len(grid) == 4 and len({point_key(t.params) for t in grid}) == 4
    same_point = [t for t in study.get_trials(deepcopy=False) if t.params == written[0] and t.number != twin.number]
    assert same_point and all(t.state.name == "PRUNED" and t.user_attrs["duplicate_of"] == twin.number
                              for t in same_point)


async def test_the_sweep_screen_offers_only_its_own_keys_and_quitting_during_a_sweep_asks(tiny_spec, tmp_path):
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.confirm import Confirm

    app = WorkbenchApp(runs_root=tmp_path / "runs", load_digits_at_start=False, sweep_specs=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep_screen(pilot, app)
        shown = {binding.action for (_, binding, enabled, _) in app.active_bindings.values() if binding.show}
        assert not shown & {"run", "run_table2", "show_form", "show_tab('live')", "show_tab('results')"}
        await pilot.press("ctrl+r", "ctrl+t", "f2")
        await pilot.pause()
        assert app.runs.idle and app.screen is screen  # the hidden form's config was not queued
        screen.busy, screen.study = True, "tiny"  # a sweep that runs, as the screen marks it
        app.update_queue_bar()
        assert "sweep tiny running" in str(app.query_one("#queue").render())
        await pilot.press("escape")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, Confirm) and app.is_running  # asked, not quit
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running
        screen.busy = False


async def test_the_sweep_screen_refuses_a_sweep_the_digits_cannot_feed(tiny_spec, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from workbench.tui.app import WorkbenchApp

    monkeypatch.setenv("DIGIT_WORKBENCH_RUNS", str(tmp_path / "runs"))
    app = WorkbenchApp(runs_root=tmp_path / "runs", load_digits_at_start=False, sweep_specs=tmp_path)
    app.digits.source = SimpleNamespace(name="a few digits", train=[0] * 250, test=[0] * 250)  # 100 + 40 pairs need 280
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep_screen(pilot, app, tiny_spec)
        await pilot.click("#sweep-start")
        await pilot.pause()
        assert not screen.busy and screen.sweep is None
        (note,) = [n for n in app._notifications if n.title == "Cannot start"]
        assert "need 280 distinct training digits" in str(note.message)
        assert not (tmp_path / "runs").exists()


def test_a_stopped_sweep_leaves_no_trial_running(tiny_spec, tmp_path):
    from workbench.sweep import SweepRun

    sweep = SweepRun(tiny_spec, "stopped", str(tmp_path / "s.journal"))
    sweep.open()
    stage = tiny_spec.stages[0]
    study = optuna.create_study(study_name=stage_study_name("stopped", 0, stage), storage=sweep.storage,
                                direction="maximize", sampler=optuna.samplers.GridSampler(stage.grid, seed=0),
                                load_if_exists=True)
    trial = study.ask()
    params = {p: trial.suggest_categorical(p, v) for p, v in stage.grid.items()}
    stopped = multiprocessing.get_context("spawn").Process(target=os.getpid)  # a worker the stop just ended
    stopped.start()
    stopped.join()
    trial.set_user_attr("worker", f"{socket.gethostname()}:{stopped.pid}")
    assert [t.state for t in sweep.trials()] == ["running"]
    sweep.stop()
    trials = sweep.trials()
    assert "running" not in [t.state for t in trials]  # on screen and in `sweep --show`: no "+1 running"
    assert sorted((t.state, t.params == params) for t in trials) == [("fail", True), ("waiting", False)]


def test_a_cancelled_final_measurement_says_cancelled_not_a_dash():
    from types import SimpleNamespace

    from workbench.tui.sweeps import final_line

    cancelled = SimpleNamespace(label="tiny after widths", unsaved="",
                                summary=SimpleNamespace(status="cancelled", reason="", mean=None, std=None, paper=None))
    assert final_line(cancelled) == "widths: cancelled"
    done = SimpleNamespace(label="tiny after alpha", unsaved="", measured_before=True,
                           summary=SimpleNamespace(status="done", reason="", mean=0.9, std=0.01, paper=None))
    assert final_line(done) == "alpha: test 90.0 ± 1.0 % (measured before)"


def test_a_failing_worker_writes_its_traceback_to_the_sweeps_log_not_to_the_terminal(tiny_spec, tmp_path, capfd):
    from workbench.sweep import SweepRun

    sweep = SweepRun(tiny_spec, "broken", str(tmp_path / "sweeps" / "broken.journal"), data="embedded")
    sweep.open()
    tiny_spec.path.unlink()  # each worker reads the spec from its file: gone, every worker fails at once
    capfd.readouterr()
    sweep.start(2)
    for p in sweep.procs:
        p.join(120)
    assert sweep.failed_workers() == [1, 1]
    log = tmp_path / "sweeps" / "broken-workers.log"
    assert "Traceback" in log.read_text() and "tiny.toml" in log.read_text()
    assert "Traceback" not in capfd.readouterr().err  # nothing drawn over a screen the app owns
    note = sweep.failure_note()
    assert note.startswith("2 worker(s) ended with an error") and str(log) in note


async def settled(pilot, holds, timeout: float = 5.0) -> None:
    """Until the layout and scrolling have caught up (a loaded machine takes more than two refreshes)."""
    import time

    deadline = time.monotonic() + timeout
    while not holds() and time.monotonic() < deadline:
        await pilot.pause(0.05)
    assert holds()


async def test_the_sweep_screen_follows_the_newest_trials_unless_the_user_scrolled_up(tiny_spec, tmp_path):
    """The trials in progress are the table's last rows: while the user has not scrolled away, the table keeps
    them in view as rows come in; scrolled up, it stays where the user put it."""
    from textual.widgets import DataTable

    from workbench.format import trial_cells
    from workbench.sweep import Trial
    from workbench.tui.app import WorkbenchApp

    def trials(count):
        return [Trial(0, k, "complete" if k < count - 2 else "running", {"hl": 8, "c_hl": 4}, 0.8, 0.01, 0.79, 0.02,
                      1.0, "vm:1", None, 2, k % 3, 3) for k in range(count)]

    app = WorkbenchApp(runs_root=tmp_path / "runs", load_digits_at_start=False, sweep_specs=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep_screen(pilot, app, tiny_spec)
        table = screen.query_one("#sweep-trials", DataTable)
        screen.show(trials(30), True)
        await settled(pilot, lambda: table.max_scroll_y > 0 and table.scroll_y == table.max_scroll_y)
        visible = range(int(table.scroll_y), int(table.scroll_y) + table.size.height - 1)  # the header row aside
        assert [str(c) for c in table.get_row_at(29)][2] == trial_cells(trials(30)[29])[2] == "running 2/3"
        assert 29 in visible
        screen.show(trials(34), True)  # more trials: still at the newest
        await settled(pilot, lambda: table.scroll_y == table.max_scroll_y)
        table.scroll_home(animate=False, immediate=True)  # the user goes back to the first trials
        await pilot.pause()
        screen.show(trials(36), True)
        await pilot.pause()
        await pilot.pause()
        assert table.scroll_y == 0 < table.max_scroll_y


async def test_a_best_so_far_that_has_not_moved_is_drawn_on_an_accuracy_scale(tiny_spec, tmp_path):
    """plotext stretches a flat line's scale by half its value: a stage whose best has not moved read 48 to 144 %."""
    import re

    from textual_plotext import PlotextPlot

    from workbench.sweep import Trial
    from workbench.tui.app import WorkbenchApp

    app = WorkbenchApp(runs_root=tmp_path / "runs", load_digits_at_start=False, sweep_specs=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep_screen(pilot, app, tiny_spec)
        screen.show([Trial(0, k, "complete", {"hl": hl, "c_hl": 4}, 0.957, 0.01, 0.95, 0.02, 1.0, "vm:1")
                     for k, hl in enumerate((8, 16, 8))], True)
        await pilot.pause()
        for name in ("#sweep-best", "#sweep-param-a"):
            plt = screen.query_one(name, PlotextPlot).plt
            plt.plotsize(40, 12)
            drawn = re.sub(r"\x1b\[[0-9;]*m", "", plt.build())  # plotext's colours aside
            ticks = [float(t) for t in re.findall(r"^ *([0-9.]+)┤", drawn, re.MULTILINE)]
            assert ticks and all(94.0 <= t <= 97.5 for t in ticks), (name, ticks)


async def test_the_sweep_screen_shows_a_pruned_trial_and_counts_it_in_its_stage(tiny_spec, tmp_path):
    """Issue 21: pruning's verdict where the user watches the sweep."""
    from textual.widgets import DataTable

    from workbench.sweep import Trial
    from workbench.tui.app import WorkbenchApp

    app = WorkbenchApp(runs_root=tmp_path / "runs", load_digits_at_start=False, sweep_specs=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_sweep_screen(pilot, app, tiny_spec)
        trials = [Trial(0, 0, "complete", {"hl": 8, "c_hl": 4}, 0.8, 0.01, 0.79, 0.02, 1.0, "vm:1", None, 2),
                  Trial(0, 1, "pruned", {"hl": 16, "c_hl": 4}, None, None, None, None, 1.0, "vm:1", 3, 2)]
        screen.show(trials, True)
        await pilot.pause()
        rows = screen.query_one("#sweep-trials", DataTable)
        assert [str(c) for c in rows.get_row_at(1)][2] == "pruned after 3"
        stage = [str(c) for c in screen.query_one("#sweep-stages", DataTable).get_row_at(0)]
        assert stage[1] == "1/4 (+1 pruned)" and "80.0" in stage[2]  # the pruned trial is not the stage's best


async def test_i_on_the_sweep_screen_weighs_the_latest_stages_settings(tiny_spec, tmp_path):
    """Issue 31: importance and parallel coordinates for a sweep's trials, where the user watches it."""
    from textual_plotext import PlotextPlot

    from workbench.analysis.importance import Row, importances, rows_of
    from workbench.sweep import Trial
    from workbench.tui.app import WorkbenchApp

    # the first stage's grid: the score follows HL, C-HL barely moves it
    scores = {(8, 4): 0.70, (8, 8): 0.71, (16, 4): 0.90, (16, 8): 0.905}
    trials = [Trial(0, k, "complete", {"hl": hl, "c_hl": c_hl}, score, 0.01, None, None, 1.0, "vm:1")
              for k, ((hl, c_hl), score) in enumerate(scores.items())]
    app = WorkbenchApp(runs_root=tmp_path / "runs", load_digits_at_start=False, sweep_specs=tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_sweep_screen(pilot, app, tiny_spec)
        screen.show(trials, True)
        await pilot.pause()
        assert screen.query_one("#sweep-param-a", PlotextPlot).plt.monitor.xlabel[0] == "HL"  # by parameter first
        screen.set_focus(None)  # not in a text box: a key for the screen
        await pilot.press("i")
        for _ in range(200):
            if screen.weighed is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause()
        bars = screen.query_one("#sweep-param-a", PlotextPlot).plt.monitor
        want = importances(rows_of([Row(str(t.number), t.params, t.val_mean * 100) for t in trials]))
        assert screen.weighed[1].settings == want.settings and want.settings[0][0] == "hl"
        assert max(zip(bars.yticks[0], bars.ylabels[0]))[1].startswith("HL ")  # the one that matters, on top
        lines = screen.query_one("#sweep-param-b", PlotextPlot).plt.monitor
        assert len([x for x in lines.x if len(x) == 3]) == 4  # each trial a line: HL, C-HL, its validation score
        assert "4 trials, 70.0 to 90.5 %" in lines.title
        await pilot.press("i")
        await pilot.pause()
        assert screen.query_one("#sweep-param-a", PlotextPlot).plt.monitor.xlabel[0] == "HL"
