"""What a sweep gains from training a stage's trials together: N trials of one architecture (3 rounds each,
scored on 500 validation pairs, as a sweep trial is), trained one engine call each against all in one call (one
stack of 3N replicas), alternated; and that both give the same numbers.

    python benchmarks/batched_trials.py [--grid alpha|schedule|dropout] [--trials 5] [--repeat 2] [--device cpu]
                                        [--out results/batched_trials_DEVICE[_GRID].txt]

The trials differ in alpha (a range stage's draws), in the learning rate and its decay (the beyond sweeps' second
stage: 0.001, 0.002 x 0.9, 0.95), or in dropout (their third stage: 0.1, 0.2, 0.35, 0.5); the last two are
fixed grids of four, whose every rate class costs the stack one more Adam pass.

The architectures are the sweeps' own: table3-fcn's choice, a small CNN (table4-cnn's base) and table4-cnn's
choice (`results/sweep_table4-cnn.md`).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from small import add_flag, out_path, shrink  # noqa: E402

from workbench.engine import run_configs
from workbench.fsutil import atomic_write_text
from workbench.paper.data import load_source
from workbench.sweep.spec import find_spec, load_spec

CASES = [("table3-fcn", "FCN KL 2, HL 64, C-KL 2, C-HL 256", dict(kl=2, hl=64, c_kl=2, c_hl=256)),
         ("table4-cnn", "CNN KL 1, HL 64, BC 4, K 3 (the base)", dict(kl=1, hl=64, bc=4, k=3)),
         ("table4-cnn", "CNN KL 2, HL 512, BC 24, K 5, C-KL 1, C-HL 256",
          dict(kl=2, hl=512, bc=24, k=5, c_kl=1, c_hl=256))]


GRIDS = {"alpha": "alpha", "schedule": "learning-rate x decay", "dropout": "dropout"}


def grid_configs(grid: str, base, trials: int) -> list:
    if grid == "schedule":
        return [base.replace(lr=lr, lr_decay=decay) for lr in (0.001, 0.002) for decay in (0.9, 0.95)]
    if grid == "dropout":
        return [base.replace(dropout=p) for p in (0.1, 0.2, 0.35, 0.5)]
    return [base.replace(alpha=round(0.1 + 0.8 * k / max(1, trials - 1), 3)) for k in range(trials)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="alpha")
    parser.add_argument("--trials", type=int, default=5, help="alpha trials (the other grids have four)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    add_flag(parser)
    args = parser.parse_args()
    if args.small:
        args.repeat, args.trials = 1, 2
    os.environ["DIGIT_WORKBENCH_PROCESSES"] = "1"  # one core, as a sweep's worker process trains
    source = load_source("auto")
    what = f"{args.trials} alpha trials" if args.grid == "alpha" else f"4 {GRIDS[args.grid]} trials"
    lines = [f"{what} (3 rounds each, 500 validation pairs), one engine call each against one "
             f"call for all, alternated {args.repeat} times, medians; {args.device}, "
             f"{platform.node() or 'this machine'}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the start",
             ""]
    for spec_name, label, params in CASES:
        base = shrink(load_spec(find_spec(spec_name)).base.replace(device=args.device, **params), args.small)
        configs = grid_configs(args.grid, base, args.trials)
        alone_s, together_s = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            alone = [run_configs([c], source, validation=500)[0] for c in configs]
            alone_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            together = run_configs(configs, source, validation=500)
            together_s.append(time.perf_counter() - started)
        same = all([r.val_acc for r in a.rounds] == [r.val_acc for r in t.rounds] for a, t in zip(alone, together))
        a, t = statistics.median(alone_s), statistics.median(together_s)
        lines.append(f"{label}: alone {a:.1f} s, together {t:.1f} s: {a / t:.2f}x; same numbers: {same}")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    name = f"batched_trials_{args.device}" + ("" if args.grid == "alpha" else f"_{args.grid}")
    atomic_write_text(out_path(args.small, args.out, ROOT / "benchmarks" / "results" / f"{name}.txt"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
