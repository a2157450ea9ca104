"""The Textual app's costs: time from launch to the first screen, and training throughput inside the app
against the same run headless.

    python benchmarks/app.py [--preset table2-fcn-ws-aux] [--repeats 3]
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


def measure_in_fresh_process(where: str, preset: str) -> float:
    """Each measurement in its own process: torch's thread pools are per process and per thread, and a
    process that already trained on its main thread trains slower from another thread."""
    done = subprocess.run([sys.executable, __file__, "--one", where, "--preset", preset], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return float(done.stdout.strip().splitlines()[-1])


def headless_seconds(config) -> float:
    from workbench.data import load_source
    from workbench.engine import run_configs

    source = load_source("auto")
    started = time.perf_counter()
    result = run_configs([config], source, on_epoch=lambda rec: None)[0]
    assert result.status == "done", result.reason
    return time.perf_counter() - started


async def in_app_seconds(config, runs_root: Path) -> float:
    from workbench.tui.app import WorkbenchApp

    app = WorkbenchApp(runs_root=runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.source_name:  # digits loaded, as a moment after a normal start
            await pilot.pause(0.05)
        started = time.perf_counter()
        app.enqueue("benchmark", config, None)
        await app.workers.wait_for_complete()  # no polling: the UI loop is left to the app
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="table2-fcn-ws-aux")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", choices=("headless", "app"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        from workbench.config import find_preset

        config = find_preset(args.preset).config.replace(device="cpu")
        if args.one == "headless":
            print(headless_seconds(config))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                print(asyncio.run(in_app_seconds(config, Path(tmp))))
        return 0

    launches = [launch_to_first_screen() for _ in range(args.repeats)]
    print(f"launch to first screen: median {statistics.median(t for t, _ in launches):.2f} s "
          f"over {len(launches)} launches ({launches[-1][1]})")

    from workbench.config import find_preset

    config = find_preset(args.preset).config.replace(device="cpu")
    headless, in_app = [], []
    for _ in range(args.repeats):  # alternate, so drift in the machine's speed hits both alike
        headless.append(measure_in_fresh_process("headless", args.preset))
        in_app.append(measure_in_fresh_process("app", args.preset))
    h, a = statistics.median(headless), statistics.median(in_app)
    print(f"{args.preset} ({config.rounds} rounds x {config.epochs} epochs): headless median {h:.2f} s, "
          f"in the app median {a:.2f} s: the app costs {100 * (a - h) / h:+.1f}%")
    print(f"  headless runs: {', '.join(f'{t:.2f}' for t in headless)}; in the app: {', '.join(f'{t:.2f}' for t in in_app)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
