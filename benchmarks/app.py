"""The Textual app's costs: time from launch to the first screen, and training throughput inside the app
against the same runs headless (`--preset table2`: all of Table II queued at once in the app against
`digit-workbench table`'s one engine call).

    python benchmarks/app.py [--preset table2-fcn-ws-aux | --preset table2] [--repeats 3] [--skip-launch]
    python benchmarks/app.py --small      # one launch, one epoch of each: what the test suite runs
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST_SCREEN = """
import sys
from workbench.tui.app import WorkbenchApp

class FirstScreen(WorkbenchApp):
    def on_mount(self):
        self.call_after_refresh(self.done)  # before the app's own after-refresh work (loading torch)
        super().on_mount()

    def done(self):
        print("torch imported:", "torch" in sys.modules)
        self.exit()

FirstScreen().run(headless=True, size=(120, 40))
"""


def launch_to_first_screen() -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "first_screen.py"  # Textual finds the app's CSS through the class's file
        script.write_text(FIRST_SCREEN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=120)
        return time.perf_counter() - started, (done.stdout.strip() or done.stderr.strip()[-300:])


def measure_in_fresh_process(where: str, preset: str, small: bool) -> float:
    """Each measurement in its own process: torch's thread pools are per process and per thread, and a
    process that already trained on its main thread trains slower from another thread."""
    small_flag = ["--small"] if small else []
    done = subprocess.run([sys.executable, __file__, "--one", where, "--preset", preset, *small_flag],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return float(done.stdout.strip().splitlines()[-1])


def configs_of(preset: str, small: bool = False) -> list:
    from workbench.paper.presets import TABLE_II, find_preset

    names = TABLE_II if preset == "table2" else [preset]
    shrink = {"epochs": 1, "rounds": 2, "pairs": 100} if small else {}
    return [find_preset(name).config.replace(device="cpu", **shrink) for name in names]


def headless_seconds(configs) -> float:
    from workbench.engine import run_configs
    from workbench.paper.data import load_source

    source = load_source("auto")
    started = time.perf_counter()
    results = run_configs(configs, source, on_epoch=lambda rec: None)
    assert all(r.status == "done" for r in results), [r.reason for r in results]
    return time.perf_counter() - started


async def in_app_seconds(configs, runs_root: Path) -> float:
    from workbench.training.group import NamedRun
    from workbench.tui.app import WorkbenchApp

    app = WorkbenchApp(runs_root=runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.digits.source is None:  # digits loaded, as a moment after a normal start
            await pilot.pause(0.05)
        started = time.perf_counter()
        for i, config in enumerate(configs):  # queued at once, as ctrl+t queues Table II
            app.enqueue(NamedRun(f"benchmark-{i}", config), start=False)
        app.start_next()
        await app.workers.wait_for_complete()  # no polling: the UI loop is left to the app
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="table2-fcn-ws-aux")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-launch", action="store_true", help="do not time the launch")
    parser.add_argument("--launch-only", action="store_true", help="time the launch only")
    parser.add_argument("--small", action="store_true", help="one launch and one epoch: the test suite's run")
    parser.add_argument("--one", choices=("headless", "app"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.small:
        args.repeats = 1

    if args.one:
        configs = configs_of(args.preset, args.small)
        if args.one == "headless":
            print(headless_seconds(configs))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                print(asyncio.run(in_app_seconds(configs, Path(tmp))))
        return 0

    if not args.skip_launch:
        launches = [launch_to_first_screen() for _ in range(args.repeats)]
        print(f"launch to first screen: median {statistics.median(t for t, _ in launches):.2f} s "
              f"over {len(launches)} launches ({launches[-1][1]}): {', '.join(f'{t:.2f}' for t, _ in launches)}")
    if args.launch_only:
        return 0

    config = configs_of(args.preset, args.small)[0]
    headless, in_app = [], []
    for _ in range(args.repeats):  # alternate, so drift in the machine's speed hits both alike
        headless.append(measure_in_fresh_process("headless", args.preset, args.small))
        in_app.append(measure_in_fresh_process("app", args.preset, args.small))
    h, a = statistics.median(headless), statistics.median(in_app)
    print(f"{args.preset} ({config.rounds} rounds x {config.epochs} epochs): headless median {h:.2f} s, "
          f"in the app median {a:.2f} s: the app costs {100 * (a - h) / h:+.1f}% (ratio {a / h:.3f})")
    print(f"  headless runs: {', '.join(f'{t:.2f}' for t in headless)}; in the app: {', '.join(f'{t:.2f}' for t in in_app)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
