"""training.py: the one path from a config to its record, as the CLI, the app's queue and a sweep's finals use it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workbench.engine import EngineError
from workbench.paper.config import RunConfig
from workbench.paper.presets import find_preset
from workbench.training.group import Group, NamedRun
from workbench.training.train import train_and_record

TINY = dict(hl=16, c_hl=8, rounds=2, epochs=2, pairs=100, batch_size=20, device="cpu")


def test_a_run_is_named_by_the_user_else_its_preset_else_its_switches():
    preset = find_preset("table2-fcn-ws-aux")
    row = NamedRun.of(preset.config, preset)
    assert (row.name, row.preset, row.paper) == ("table2-fcn-ws-aux", "table2-fcn-ws-aux", preset.paper)
    edited = NamedRun.of(preset.config.replace(alpha=0.2), preset)
    assert edited.name == "table2-fcn-ws-aux α 0.2" and edited.paper is None  # never scored against a row it left
    # three edits of one preset are three names; in the form's order; a device is where it ran, not what it is
    names = {NamedRun.of(preset.config.replace(alpha=a, device="cpu"), preset).name for a in (0.5, 0.2, 0.8)}
    assert names == {"table2-fcn-ws-aux", "table2-fcn-ws-aux α 0.2", "table2-fcn-ws-aux α 0.8"}
    assert NamedRun.of(preset.config.replace(epochs=5, hl=128, weight_sharing=False), preset).name == \
        "table2-fcn-ws-aux WS off HL 128 epochs 5"
    assert NamedRun.of(preset.config.replace(seed=4), preset).name == "table2-fcn-ws-aux seed 4"
    assert NamedRun.of(preset.config.replace(seed=4, device="cpu"), preset).paper is preset.paper
    assert NamedRun.of(RunConfig(subnet="cnn", weight_sharing=False)).name == "cnn aux"
    assert NamedRun.of(preset.config, preset, name="mine").name == "mine"


def record(run: int, round_: int, epoch: int):
    return SimpleNamespace(run=run, round=round_, epoch=epoch)


def test_a_cancelled_run_goes_unreported_and_the_engine_stops_once_only_cancelled_runs_train():
    config = RunConfig(rounds=1, epochs=2)
    group = Group([NamedRun("a", config), NamedRun("b", config)])
    assert group.accept(record(0, 0, 1)) and group.accept(record(1, 0, 1))
    group.cancel(0)
    assert not group.is_set()  # b still trains
    assert not group.accept(record(0, 0, 2))  # a's records are no longer reported
    assert group.accept(record(1, 0, 2)) and not group.is_set()
    assert not group.accept(record(0, 0, 2)) and group.is_set()  # b is done: nothing left that anyone waits for
    assert group.delivered == [{(0, 1)}, {(0, 1), (0, 2)}]


def test_cancelling_every_run_stops_the_engine_at_once():
    group = Group([NamedRun("a", RunConfig()), NamedRun("b", RunConfig())])
    group.cancel(1)
    assert not group.is_set()
    group.cancel(0)
    assert group.is_set()


def test_a_run_cancelled_beside_others_keeps_the_epochs_it_reported(source, tmp_path):
    runs = [NamedRun("stopped", RunConfig(**TINY)), NamedRun("goes on", RunConfig(aux_loss=False, **TINY))]
    group = Group(runs)

    def on_epoch(rec) -> None:
        if rec.run == 0 and rec.epoch == 1 and rec.round == 1:
            group.cancel(0)

    stopped, goes_on = train_and_record(group, source, runs_root=tmp_path, on_epoch=on_epoch)
    assert goes_on.summary.status == "done" and len(goes_on.result.history) == 4
    assert stopped.summary.status == "cancelled"
    assert {(h.round, h.epoch) for h in stopped.result.history} == {(0, 1), (1, 1)}
    assert [r["epochs"] for r in stopped.summary.rounds] == [1, 1]
    alone = train_and_record([NamedRun("alone", RunConfig(aux_loss=False, **TINY))], source)[0]
    assert goes_on.summary.round_acc == alone.summary.round_acc  # the cancel moved no other run's numbers
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([stopped.summary.id, goes_on.summary.id])


def test_what_cannot_start_is_refused_or_recorded_failed_naming_the_field(source, tmp_path):
    too_many = [NamedRun("big", RunConfig(**{**TINY, "pairs": 5000}))]
    with pytest.raises(EngineError, match="^pairs: 5000 pairs need 10000"):
        train_and_record(too_many, source, runs_root=tmp_path)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())  # refused before anything was written
    (failed,) = train_and_record(too_many, source, runs_root=tmp_path, refuse=False)
    assert failed.summary.status == "failed" and failed.summary.reason.startswith("pairs: ")
    assert (tmp_path / failed.summary.id / "summary.json").exists()  # recorded like any other run

    def no_digits():
        raise OSError("digits are gone")

    (failed,) = train_and_record(too_many, no_digits, refuse=False)
    assert failed.summary.status == "failed" and "digits are gone" in failed.summary.reason


def test_a_record_that_cannot_be_saved_stays_in_memory_saying_why(source, tmp_path):
    blocked = tmp_path / "runs"
    blocked.write_text("a file where the runs directory should be")
    (r,) = train_and_record([NamedRun("kept", RunConfig(**TINY))], source, runs_root=blocked)
    assert r.summary.status == "done" and r.summary.id.startswith("unsaved-") and r.summary.path is None
    assert "kept: not saved" in r.unsaved and str(blocked) in r.unsaved
    assert blocked.read_text().startswith("a file")  # nothing replaced or written


def test_a_preset_beyond_the_paper_is_no_edit_of_a_paper_row(source):
    from workbench.format import paper_label
    from workbench.records.store import RunSummary

    beyond = find_preset("beyond-fcn-best")
    assert beyond.paper is None
    row = NamedRun.of(beyond.config, beyond)
    assert row.edited is False and row.paper is None and row.name == "beyond-fcn-best"
    assert NamedRun.of(beyond.config.replace(alpha=0.2), beyond).edited is True
    tiny = RunConfig(**TINY)
    as_is, edited = train_and_record([NamedRun("b", tiny, "beyond-fcn-best", None, False),
                                      NamedRun("b (edited)", tiny, "beyond-fcn-best", None, True)], source)
    assert paper_label(as_is.summary) == "—" and paper_label(edited.summary) == "edited"
    older = RunSummary.from_dict({**as_is.summary.to_dict(), "id": "old", "edited": None})
    assert paper_label(older) == "edited"  # a record from before keeps the label it had


@pytest.mark.parametrize("processes", ["1", ""], ids=["one process", "side by side"])
def test_a_stack_of_cancelled_runs_stops_at_once_and_frees_its_core(source, monkeypatch, processes):
    """Cancelling one run of a group whose stack holds nothing else stops that stack (it trained its 1000 epochs
    unseen before, while the run still wanted waited for a core); the other stack trains to its own numbers."""
    from workbench.engine import run_configs

    if processes:
        monkeypatch.setenv("DIGIT_WORKBENCH_PROCESSES", processes)
    long_run = RunConfig(hl=16, c_hl=8, rounds=2, epochs=1000, pairs=100, batch_size=20, device="cpu")
    short_run = RunConfig(subnet="cnn", hl=8, c_hl=8, rounds=2, epochs=2, pairs=100, batch_size=20, device="cpu")
    group = Group([NamedRun("long", long_run), NamedRun("short", short_run)])
    trained = {0: 0, 1: 0}

    def on_epoch(rec) -> None:
        trained[rec.run] += 1
        if rec.run == 0 and rec.epoch == 2:
            group.cancel(0)

    long, short = run_configs([long_run, short_run], source, on_epoch, group)
    assert trained[0] < 50  # a few epochs in flight when the cancel came, not 2 x 1000
    assert long.status == "cancelled" and short.status == "done" and trained[1] == 4
    (alone,) = run_configs([short_run], source)
    assert short.test_accuracies() == alone.test_accuracies()
