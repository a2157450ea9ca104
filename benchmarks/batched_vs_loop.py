"""The batched engine against the reference loop on the full Table II protocol.

    python benchmarks/batched_vs_loop.py [--loop-rounds 1] [--epochs 20] [--device auto]

Runs all eight Table II rows (10 rounds x 20 epochs, batch 5, 1000 pairs) with the batched engine, and the loop
engine on --loop-rounds rounds of every row, in this one invocation. Prints the total wall time, seconds per run
(one round of one row) for each engine, their ratio, and the peak memory of this process and its workers.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from small import SMALL_RUN, add_flag  # noqa: E402

from workbench.engine import run_configs
from workbench.format import mean_std_label
from workbench.paper.data import load_source
from workbench.paper.presets import TABLE_II, find_preset


def peak_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished worker, in MiB (Linux: KiB)."""
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, children


class PssSampler(threading.Thread):
    """Samples the proportional set size (shared library pages split between the processes that map them)
    of this process and its descendants: the memory the whole run really holds. Linux only."""

    def __init__(self, every_s: float = 3.0):  # reading smaps is costly: the peak is flat anyway
        super().__init__(daemon=True)
        self.every_s, self.peak, self.running = every_s, 0.0, True

    @staticmethod
    def family() -> list[int]:
        """This process and its descendants, from the kernel's children lists (cheap: no /proc scan)."""
        found, frontier = [], [os.getpid()]
        while frontier:
            pid = frontier.pop()
            found.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        frontier += [int(child) for child in f.read().split()]
            except OSError:
                pass
        return found

    @staticmethod
    def pss_mib(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, sum(self.pss_mib(pid) for pid in self.family()))
            time.sleep(self.every_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop-rounds", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-loop", action="store_true")
    add_flag(parser)
    args = parser.parse_args()

    source = load_source("auto")
    presets = [find_preset(name) for name in TABLE_II]
    started = time.perf_counter()

    configs = [p.config.replace(rounds=args.rounds, epochs=args.epochs, device=args.device) for p in presets]
    if args.small:
        configs = [c.replace(**SMALL_RUN) for c in configs]
    sampler = PssSampler()
    if os.path.exists("/proc/self/smaps_rollup"):
        sampler.start()
    t0 = time.perf_counter()
    batched = run_configs(configs, source, engine="batched")
    batched_wall = time.perf_counter() - t0
    sampler.running = False
    batched_runs = sum(len(r.test_accuracies()) for r in batched)
    batched_peak = peak_mib()

    loop_wall, loop_runs, loop = 0.0, 0, []
    if not args.skip_loop:
        loop_configs = [c.replace(rounds=args.loop_rounds) for c in configs]
        t0 = time.perf_counter()
        loop = run_configs(loop_configs, source, engine="loop")
        loop_wall = time.perf_counter() - t0
        loop_runs = sum(len(r.test_accuracies()) for r in loop)

    print(f"digits: {source.name}; device: {batched[0].device}; torch {torch.__version__}; "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"{'preset':<20} {'batched (mean ± std)':>22} {'paper':>12}  {'loop rounds':>12}")
    for p, b, l in zip(presets, batched, loop or [None] * len(presets)):
        loop_acc = " ".join(f"{a * 100:.1f}" for a in l.test_accuracies()) if l else "—"
        print(f"{p.name:<20} {mean_std_label(*b.mean_std()):>22} {p.paper.label():>12}  {loop_acc:>12}")
    per_batched = batched_wall / batched_runs
    print(f"\nbatched: Table II ({batched_runs} runs) in {batched_wall:.1f} s: {per_batched:.3f} s per run")
    if loop_runs:
        per_loop = loop_wall / loop_runs
        print(f"loop:    {loop_runs} runs in {loop_wall:.1f} s: {per_loop:.2f} s per run")
        print(f"ratio:   batched is {per_loop / per_batched:.1f}x faster per run")
    me, workers = batched_peak
    print(f"peak memory of the batched Table II: {sampler.peak:.0f} MiB for all its processes together (PSS); "
          f"peak RSS {me:.0f} MiB this process, {workers:.0f} MiB the largest worker")
    print(f"total wall time of this benchmark: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
