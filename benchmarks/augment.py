"""What augmentation is worth, alone and with re-pairing: beyond-cnn's base architecture (10 rounds x 20 epochs,
seed 0) as it is, with its training digits moved each epoch (shift 1 pixel of 14, turns up to 10 degrees), with
re-pairing, and with both. Round r of every run sees the same pairs, so the differences are paired, as `compare`
computes them.

    python benchmarks/augment.py [--shift 1] [--rotate 10] [--out benchmarks/results/augment.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from beyond import paired  # noqa: E402
from small import add_flag, out_path, shrink  # noqa: E402

from workbench.format import mean_std_label
from workbench.fsutil import atomic_write_text
from workbench.paper.data import load_source
from workbench.sweep.spec import find_spec, load_spec
from workbench.training.group import NamedRun
from workbench.training.train import train_and_record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shift", type=int, default=1)
    parser.add_argument("--rotate", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/augment.md")
    add_flag(parser)
    args = parser.parse_args()
    args.out = out_path(args.small, args.out, ROOT / "benchmarks" / "results" / "augment.md")
    base = shrink(load_spec(find_spec("beyond-cnn")).base.replace(rounds=10), args.small)
    moved = dict(shift=args.shift, rotate=args.rotate)
    runs = [NamedRun("beyond-cnn's base architecture", base),
            NamedRun(f"+ augmentation (shift {args.shift}, rotate {args.rotate:g})", base.replace(**moved)),
            NamedRun("+ re-pairing", base.replace(repair=True)),
            NamedRun("+ both", base.replace(repair=True, **moved))]
    started = time.perf_counter()
    summaries = [r.summary for r in train_and_record(runs, load_source("auto"))]
    wall = time.perf_counter() - started
    lines = ["| CNN run (test %, 10 rounds) | against the base | against re-pairing alone |", "|---|---|---|"]
    for i, s in enumerate(summaries):
        lines.append(f"| {s.name}: {mean_std_label(s.mean, s.std)} | {'—' if i == 0 else paired(s, summaries[0])} "
                     f"| {paired(s, summaries[2]) if i == 3 else '—'} |")
    lines += ["", f"Mean difference in points, 95 % t interval, paired t-test, rounds won; digits: "
              f"{summaries[0].data_source}; all 4 runs trained together in {wall:.0f} s."]
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
