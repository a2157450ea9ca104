"""Issue 21: a worker trains a batch of trials in one engine call, and an opt-in pruner stops hopeless trials while
the rest of their stack trains on. Every trial's numbers are those it gets alone."""

import threading

import optuna
import pytest
from sweep_specs import STACKING_SPEC, tiny_spec_text

from workbench.engine import run_configs
from workbench.sweep import (all_trials, best_params, final_runs, load_spec, open_storage, point_key, run_worker,
                             stage_study_name, trials_csv)


def spec_file(tmp_path, text, extra=""):
    path = tmp_path / "tiny.toml"
    path.write_text(extra + text)
    return load_spec(path)




@pytest.fixture
def engine_calls(monkeypatch):
    """The number of configs of every engine call a worker makes."""
    import workbench.engine as engine

    calls = []
    real = engine.run_configs

    def counting(configs, *args, **kwargs):
        calls.append(len(configs))
        return real(configs, *args, **kwargs)

    monkeypatch.setattr(engine, "run_configs", counting)
    return calls


def test_a_batch_of_trials_trains_in_one_call_and_each_scores_what_it_scores_alone(tmp_path, source, engine_calls):
    spec = spec_file(tmp_path, STACKING_SPEC)
    storage_url = str(tmp_path / "s.journal")
    run_worker(spec, storage_url, "b1", source=source)
    # the first grid's four points share an architecture: one call; the widths differ: one at a time, so that
    # workers share them as they free up; the range stage's eight trials in batches of 8 // 4
    assert engine_calls == [4, 1, 1, 2, 2, 2, 2]
    trials = all_trials(spec, open_storage(storage_url), "b1")
    assert all(t.state == "complete" for t in trials) and len(trials) == 14
    assert sorted(point_key(t.params) for t in trials if t.stage == 0) == sorted(
        point_key({"alpha": a, "repair": r}) for a in (0.2, 0.8) for r in (False, True))
    assert [t.batch for t in sorted(trials, key=lambda t: (t.stage, t.number))] == [4] * 4 + [1] * 2 + [2] * 8
    base = spec.base
    for stage in range(3):
        mine = [t for t in trials if t.stage == stage]
        for t in mine:
            alone = run_configs([base.replace(**t.params)], source, validation=spec.validation_pairs)[0]
            assert (t.val_mean, t.val_std, t.test_mean, t.test_std) == (*alone.val_mean_std(), *alone.mean_std())
        base = base.replace(**best_params(mine))


def test_a_worker_leaves_another_workers_queued_point_and_a_crossed_batch_trains_by_architecture(
        tmp_path, source, engine_calls):
    """Two workers queue at once: each takes its own point, not the other's of another architecture (CI saw one
    worker take both widths into one call); and should a batch cross anyway, each architecture trains on its own."""
    from workbench.sweep.batch import Asked, Batch, ask_batch, draw_params
    from workbench.sweep.worker import stage_study

    spec = spec_file(tmp_path, tiny_spec_text())
    storage = open_storage(str(tmp_path / "s.journal"))
    study = stage_study(spec, storage, "x1", 0)
    stage = spec.stages[0]
    study.enqueue_trial({"hl": 8, "c_hl": 4})  # this worker's point...
    study.enqueue_trial({"hl": 16, "c_hl": 8})  # ...and the other worker's, queued before this one asks
    mine = ask_batch(study, stage, spec.base, 2)
    assert [a.params for a in mine] == [{"hl": 8, "c_hl": 4}]
    theirs = study.ask()  # the crossing the peek cannot see: asked between the look and the ask
    crossed = mine + [Asked(theirs, draw_params(stage, theirs))]
    Batch(spec, 0, study, storage, spec.base, source).train(crossed)
    assert engine_calls == [1, 1]
    trials = all_trials(spec, storage, "x1")
    assert sorted(t.batch for t in trials) == [1, 1] and all(t.state == "complete" for t in trials)


def test_a_grid_over_the_training_settings_trains_as_one_stack_each_trial_as_alone(tmp_path, source, engine_calls):
    """Item 2 in a sweep: a grid over the learning rate, its decay and dropout is one architecture, so one call."""
    text = STACKING_SPEC.replace('grid = { alpha = [0.2, 0.8], repair = [false, true] }',
                                 'grid = { lr = [0.001, 0.003], lr_decay = [0.9, 1.0], dropout = [0.0, 0.3] }')
    spec = spec_file(tmp_path, text.split("[[stage]]\nname = \"widths\"")[0])
    run_worker(spec, str(tmp_path / "s.journal"), "g1", source=source)
    assert engine_calls == [8]
    trials = all_trials(spec, open_storage(str(tmp_path / "s.journal")), "g1")
    assert len(trials) == 8 and {t.batch for t in trials} == {8}
    for t in trials:
        alone = run_configs([spec.base.replace(**t.params)], source, validation=spec.validation_pairs)[0]
        assert (t.val_mean, t.val_std, t.test_mean, t.test_std) == (*alone.val_mean_std(), *alone.mean_std())
    assert len({t.val_mean for t in trials}) > 1


@pytest.mark.parametrize("workers, queued", [(1, 4), (2, 2), (3, 2)])
def test_the_workers_of_a_machine_split_each_group_of_a_grid(tmp_path, workers, queued):
    """Groups may cost unlike (epochs 1 or 2 here): a worker queues its share of one group, never a whole group
    while another worker takes the dearer one (beyond-fcn ran 1.2x slower so, one core idle a third of a stage)."""
    from optuna.trial import TrialState

    from workbench.sweep.batch import queue_points
    from workbench.sweep.worker import stage_study

    text = STACKING_SPEC.replace('grid = { alpha = [0.2, 0.8], repair = [false, true] }',
                                 'grid = { epochs = [1, 2], lr = [0.001, 0.003], lr_decay = [0.9, 1.0] }')
    spec = spec_file(tmp_path, text)
    study = stage_study(spec, open_storage(str(tmp_path / "s.journal")), "q1", 0)
    queue_points(study, spec.stages[0], spec.base, [], 10, workers)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert len(waiting) == queued
    assert len({t.system_attrs["fixed_params"]["epochs"] for t in waiting}) == 1  # one architecture


def test_a_batch_says_how_far_its_trials_have_come_while_they_train(tmp_path, source, monkeypatch):
    """A batch's trials finish together; meanwhile each says, once all its rounds have done an epoch, how many
    epochs it has done, and the trials table (screen and command alike) shows it."""
    from workbench.format import trial_cells
    from workbench.sweep import batch

    spec = spec_file(tmp_path, STACKING_SPEC)  # its first stage: four points of one architecture, 2 rounds, 2 epochs
    storage_url = str(tmp_path / "s.journal")
    states = []
    real_on_epoch = batch.Progress.on_epoch

    def reading_the_storage(self, record):
        real_on_epoch(self, record)
        trials = all_trials(spec, open_storage(storage_url), "progress")
        states.append(sorted(trial_cells(t)[2] for t in trials if t.stage == 0 and t.state == "running"))

    monkeypatch.setattr(batch.Progress, "on_epoch", reading_the_storage)
    run_worker(spec, storage_url, "progress", source=source)
    first_stage = states[:16]  # 4 trials x 2 rounds x 2 epochs, one record each
    assert first_stage[0] == ["running 0/2"] * 4  # one round of trial 0 has done epoch 1: not yet all of them
    assert first_stage[7] == ["running 1/2"] * 4 and first_stage[15] == ["running 2/2"] * 4
    assert all(len(s) == 4 for s in first_stage)
    done = [t for t in all_trials(spec, open_storage(storage_url), "progress") if t.stage == 0]
    assert [trial_cells(t)[2] for t in done] == ["complete"] * 4


def test_two_workers_that_ask_a_range_stages_last_trial_at_once_spend_it_once(tmp_path):
    """Both see one trial of the budget left and both ask (on PostgreSQL, 1 run in 5 of the two-worker test
    counted 9 trials of 8): the later trial ends at once as surplus, never counted nor shown."""
    from optuna.trial import TrialState

    from workbench.sweep.batch import ask_batch, counted
    from workbench.sweep.storage import stage_trials

    spec = spec_file(tmp_path, tiny_spec_text(alpha_trials=3))
    stage = spec.stages[1]
    storage = open_storage(str(tmp_path / "s.journal"))
    study = optuna.create_study(study_name=stage_study_name("race", 1, stage), storage=storage, direction="maximize")
    for _ in range(2):
        study.tell(study.ask(), 0.5)
    both_looked = threading.Barrier(2, timeout=30)
    ask = study.ask

    def ask_once_both_have_looked():
        both_looked.wait()  # each has read the budget's one trial left before either asks it
        return ask()

    study.ask = ask_once_both_have_looked
    asked = []
    workers = [threading.Thread(target=lambda: asked.extend(ask_batch(study, stage, spec.base, 1, 2)))
               for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    trials = study.get_trials(deepcopy=False)
    assert len(asked) == 1 and len(counted(trials)) == 3 == stage.trials
    (surplus,) = [t for t in trials if t.user_attrs.get("surplus")]
    assert surplus.state == TrialState.FAIL and surplus.number == 3 and asked[0].trial.number == 2
    assert [t.number for t in stage_trials(storage, "race", 1, stage)] == [0, 1, 2]


def test_batch_one_trains_one_trial_at_a_time(tmp_path, source, engine_calls):
    spec = spec_file(tmp_path, STACKING_SPEC, extra="batch = 1\n")
    run_worker(spec, str(tmp_path / "s.journal"), "b2", source=source)
    assert engine_calls == [1] * 14


def test_a_batch_cancelled_part_way_queues_its_points_again(tmp_path, source):
    spec = spec_file(tmp_path, STACKING_SPEC.replace("epochs = 2", "epochs = 3"))
    storage_url = str(tmp_path / "s.journal")
    cancel = threading.Event()
    import workbench.engine as engine

    real = engine.run_configs

    def cancelling(configs, *args, on_epoch=None, **kwargs):
        def seen(rec):
            if rec.epoch == 2:
                cancel.set()
        return real(configs, *args, on_epoch=seen, **kwargs)

    engine.run_configs = cancelling
    try:
        run_worker(spec, storage_url, "b4", source=source, cancel=cancel)
    finally:
        engine.run_configs = real
    study = optuna.load_study(study_name=stage_study_name("b4", 0, spec.stages[0]), storage=open_storage(storage_url))
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "COMPLETE")]
    assert len([t for t in study.trials if t.state.name == "WAITING"]) == 4  # every point waits for the rerun
    run_worker(spec, storage_url, "b4", source=source)
    trials = all_trials(spec, open_storage(storage_url), "b4")
    grid = [t for t in trials if t.stage == 0 and t.state == "complete"]
    assert len(grid) == 4 and len({point_key(t.params) for t in grid}) == 4 and {t.batch for t in grid} == {4}


# ------------------------------------------------------------------ pruning

def test_a_pruned_trial_is_never_a_choice_and_shows_as_pruned(tmp_path, source, monkeypatch):
    """The trial that would win the grid is pruned after its first epoch: the stage chooses another, the trials
    CSV and --show say pruned and when, and the stage's final measurement is of the choice."""
    from workbench.sweep import pruning

    text = STACKING_SPEC.replace("epochs = 2", "epochs = 3").replace("trials = 8", "trials = 4")
    plain = spec_file(tmp_path, text)
    run_worker(plain, str(tmp_path / "plain.journal"), "p0", source=source)
    winner = best_params([t for t in all_trials(plain, open_storage(str(tmp_path / "plain.journal")), "p0")
                          if t.stage == 0])

    spec = spec_file(tmp_path, text, extra='pruner = "median"\n')
    real_epoch_done = pruning.Watch.epoch_done

    def prune_the_winner(self, run, epoch, records):
        real_epoch_done(self, run, epoch, records)
        if self.asked[run].params == winner:
            self.pruned.setdefault(run, epoch)

    monkeypatch.setattr(pruning.Watch, "epoch_done", prune_the_winner)
    storage_url = str(tmp_path / "pruned.journal")
    run_worker(spec, storage_url, "p1", source=source)
    trials = all_trials(spec, open_storage(storage_url), "p1")
    (pruned,) = [t for t in trials if t.state == "pruned"]
    assert pruned.params == winner and pruned.pruned_at == 1 and pruned.val_mean is None
    chosen = best_params([t for t in trials if t.stage == 0])
    assert chosen is not None and chosen != winner
    assert all(c.replace(rounds=1) != spec.base.replace(**winner, rounds=1) for _, c, _ in final_runs(
        spec, open_storage(storage_url), "p1"))
    csv_text = trials_csv(spec, trials)
    assert any(line.split(",")[3] == "pruned" and ",1," in line for line in csv_text.splitlines())
    from workbench.format import trial_cells

    assert trial_cells(pruned)[2] == "pruned after 1"
    # the other trials scored what they score alone: pruning one did not move its stack-mates
    for t in trials:
        if t.stage == 0 and t.state == "complete":
            assert t.batch == 4
            alone = run_configs([spec.base.replace(**t.params)], source, validation=spec.validation_pairs)[0]
            assert t.val_mean == alone.val_mean_std()[0]


def test_median_pruning_stops_trials_and_counts_them_in_a_range_stage(tmp_path, source):
    """A real pruner (Optuna's median) on the tiny sweep: the range stage's budget counts pruned trials, so it
    ends after its trials whether finished or pruned."""
    spec = spec_file(tmp_path, tiny_spec_text(epochs=4, alpha_trials=12), extra='pruner = "median"\nbatch = 3\n')
    storage_url = str(tmp_path / "s.journal")
    run_worker(spec, storage_url, "p2", source=source)
    trials = [t for t in all_trials(spec, open_storage(storage_url), "p2") if t.stage == 1]
    assert len(trials) == 12 and {t.state for t in trials} <= {"complete", "pruned"}
    study = optuna.load_study(study_name=stage_study_name("p2", 1, spec.stages[1]), storage=open_storage(storage_url))
    # every trial reported its epochs' validation scores; a pruned one stopped at its last report
    for t in study.trials:
        steps = sorted(t.intermediate_values)
        assert steps == list(range(1, len(steps) + 1)) and steps
        if t.state.name == "PRUNED":
            assert t.user_attrs["pruned_at"] == steps[-1] < 4


def test_the_bottom_line_counts_a_pruned_trial_as_spent_and_says_which_trials_run(tmp_path):
    """The main screen's line names the first stage whose budget is not spent. A pruned trial spends it as a
    finished one does (it used to hold the line on a pruned stage for the rest of the sweep), and a batch's
    trials, which finish together, show as running meanwhile."""
    from workbench.format import sweep_progress
    from workbench.sweep.storage import Trial, stage_summaries

    spec = spec_file(tmp_path, tiny_spec_text(alpha_trials=6))

    def trial(stage, number, state, val=None):
        return Trial(stage, number, state, {}, val, None if val is None else 0.01, None, None, None, "w")

    widths = [trial(0, 0, "pruned"), trial(0, 1, "complete", 0.81), trial(0, 2, "pruned"),
              trial(0, 3, "complete", 0.84)]
    line = sweep_progress(stage_summaries(spec, widths + [trial(1, k, "running") for k in range(3)]))
    assert line == "stage 2/2 alpha 0/6 (+3 running) · best validation 84.0 ± 1.0 %"
    line = sweep_progress(stage_summaries(spec, widths[:3]))
    assert line == "stage 1/2 widths 1/4 (+2 pruned) · best validation 81.0 ± 1.0 %"


@pytest.mark.parametrize("text, key", [("batch = 0\n", "batch"), ("batch = true\n", "batch"),
                                       ('pruner = "hyperband"\n', "pruner")])
def test_bad_batch_and_pruner_name_the_key(tmp_path, text, key):
    from workbench.paper.config import ConfigError

    with pytest.raises(ConfigError) as err:
        spec_file(tmp_path, tiny_spec_text(), extra=text)
    assert err.value.key == key


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_batch_beats_for_every_trial_while_it_trains_and_stops_after(tmp_path):
    """A database storage fails a trial whose heartbeat stops; Optuna beats only inside optimize(), so a batch
    asked by hand must beat itself: kept alive while it trains, failed (and queued again) once its beats stop."""
    import time

    from workbench.sweep.batch import Asked, heartbeats

    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=1, grace_period=2,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
    study = optuna.create_study(storage=storage, study_name="hb", direction="maximize")
    asked = [Asked(study.ask(), {}) for _ in range(2)]
    with heartbeats(storage, asked):
        time.sleep(3.5)
        optuna.storages.fail_stale_trials(study)
        assert [t.state.name for t in study.trials] == ["RUNNING", "RUNNING"]
    time.sleep(3.5)
    optuna.storages.fail_stale_trials(study)
    states = [t.state.name for t in study.trials]
    assert states[:2] == ["FAIL", "FAIL"] and states[2:] == ["WAITING", "WAITING"]  # retried
