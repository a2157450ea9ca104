"""How long the compare screen takes to open on 20 runs of 10 rounds x 20 epochs (records with their histories
and predictions, written as the engine writes them), in a headless app: from the key press to the screen drawn
(its records are read off the UI thread), and to everything read and drawn.

    python benchmarks/compare_screen.py [--runs 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from small import add_flag  # noqa: E402


def fake_result(index: int):
    """A RunResult of the protocol's shape (10 rounds x 20 epochs, 1,000 test pairs), numbers made up."""
    import numpy as np

    from workbench.engine.base import EpochRecord, Predictions, RoundResult, RunResult
    from workbench.paper.config import RunConfig

    rng = np.random.default_rng(index)
    config = RunConfig(alpha=round(0.05 * (index + 1), 2))
    history, rounds = [], []
    for r in range(config.rounds):
        for e in range(1, config.epochs + 1):
            history.append(EpochRecord(0, r, e, 1 / e + rng.random() * 0.05, 0.7 + 0.01 * e, 0.7 + 0.009 * e,
                                       0.9, 1e-3, 0.2))
        classes = rng.integers(0, 10, (1000, 2)).astype(np.int8)
        target = (classes[:, 0] <= classes[:, 1]).astype(np.int8)
        prob = rng.random(1000).astype(np.float32)
        preds = Predictions(prob, classes, target, classes.copy(), np.arange(24, dtype=np.int32),
                            rng.integers(0, 255, (24, 2, 14, 14)).astype(np.uint8))
        rounds.append(RoundResult(r, r, "done", test_acc=0.85 + rng.random() * 0.02, train_acc=0.9, digit_acc=0.9,
                                  train_loss=0.1, epochs=20, predictions=preds))
    return RunResult("done", config, rounds, history, "embedded", "cpu", "batched", 0, 30.0)


async def open_time(summaries, runs_root: Path) -> tuple[float, float]:
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.compare import CompareScreen

    app = WorkbenchApp(runs_root=runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.digits.source is None:  # a moment after a normal start: digits (and scipy) loaded in the background
            await pilot.pause(0.05)
        started = time.perf_counter()
        app.notebook.open_compare(summaries)
        await pilot.pause()  # mounted, laid out and drawn once
        shown = time.perf_counter() - started
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        while not screen.loaded.is_set():
            await pilot.pause(0.01)
        await pilot.pause()  # the curves, tables and heatmaps drawn
        return shown, time.perf_counter() - started


def in_a_real_terminal(root: Path, repeats: int) -> list[tuple[float, float]]:
    """The installed command in a pseudo-terminal (tests/test_terminal.py's Terminal): every run marked, then `c`;
    the time until the screen shows the compare screen's tabs, and until its plots' titles are drawn."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_terminal import Terminal

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a user's machine (see main)
    times = []
    for _ in range(repeats):
        term = Terminal(root.parent, 120, 40)
        try:
            term.wait_for("Preset", timeout=60)
            term.wait_for("digits: embedded", timeout=60)  # digits (and scipy) loaded in the background
            term.press("f3", pause=0.5)
            term.press(*[" "] * args_runs(root), pause=0.05)
            term.pump(1.0)
            started = time.monotonic()
            term.child.send("c")
            shown = drawn = None
            while drawn is None and time.monotonic() - started < 30:
                term.pump(0.01)
                now = time.monotonic() - started
                if shown is None and "Paired (p)" in term.text:
                    shown = now
                if shown is not None and "train loss: mean" in term.text and "digit accuracy %" in term.text:
                    drawn = now
            times.append((shown or float("nan"), drawn or float("nan")))
        finally:
            term.child.close(force=True)
    return times


def args_runs(root: Path) -> int:
    return sum(1 for p in root.iterdir() if (p / "summary.json").exists())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    add_flag(parser)
    args = parser.parse_args()
    if args.small:
        args.runs, args.repeats = 2, 1
    from workbench.records.store import load_runs, save_run

    if args.one:
        summaries, _ = load_runs(Path(args.one))
        print(*asyncio.run(open_time(summaries, Path(args.one))))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        summaries = [save_run(fake_result(i), f"run-{i}", root=root) for i in range(args.runs)]
        times = []
        for _ in range(args.repeats):  # each in a fresh process: nothing imported by an earlier repeat
            # with bytecode caching on, as on a user's machine (this VM sets PYTHONDONTWRITEBYTECODE, which
            # would recompile every module the screen imports in every fresh process)
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            done = subprocess.run([sys.executable, __file__, "--one", str(root)], capture_output=True, text=True,
                                  timeout=300, env=env)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            times.append(tuple(float(x) for x in done.stdout.strip().splitlines()[-1].split()))
        shown, full = [t[0] for t in times], [t[1] for t in times]
        print(f"compare screen on {args.runs} runs of 10 rounds x 20 epochs, headless app in fresh processes "
              f"(to the app's idle): shown after median {statistics.median(shown):.3f} s "
              f"({', '.join(f'{t:.3f}' for t in shown)}); everything read and drawn after median "
              f"{statistics.median(full):.3f} s ({', '.join(f'{t:.3f}' for t in full)})", flush=True)
        real = in_a_real_terminal(root, args.repeats)
        shown, full = [t[0] for t in real], [t[1] for t in real]
        print(f"in a real terminal (the installed command in a pseudo-terminal, 120x40; from the key `c` to the "
              f"screen): tabs on screen after median {statistics.median(shown):.3f} s "
              f"({', '.join(f'{t:.3f}' for t in shown)}); plots drawn after median {statistics.median(full):.3f} s "
              f"({', '.join(f'{t:.3f}' for t in full)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
