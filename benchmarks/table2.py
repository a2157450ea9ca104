"""Table II and the basic net with the paper's protocol (10 rounds, 20 epochs, batch 5): ours beside the paper's.

    python benchmarks/table2.py [--engine batched|loop] [--rounds 10] [--out benchmarks/results/table2.md]

Writes a markdown table (and a CSV beside it) and prints the machine, the digit source and the wall time.
"""

from __future__ import annotations

import argparse
import csv
import io
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from small import add_flag, out_path, shrink  # noqa: E402

from workbench.engine import run_configs
from workbench.format import mean_std_label, signed_points
from workbench.fsutil import atomic_write_text
from workbench.paper.data import load_source
from workbench.paper.presets import TABLE_II, find_preset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("batched", "loop"), default="batched")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/table2.md")
    add_flag(parser)
    args = parser.parse_args()
    args.out = out_path(args.small, args.out, ROOT / "benchmarks" / "results" / "table2.md")

    source = load_source("auto")
    presets = [find_preset(name) for name in TABLE_II + ["basic"]]
    configs = [shrink(p.config.replace(rounds=args.rounds, epochs=args.epochs, device=args.device), args.small)
               for p in presets]
    started = time.perf_counter()
    results = run_configs(configs, source, engine=args.engine)
    wall = time.perf_counter() - started

    lines = [f"| preset | subnet | WS | aux | ours (mean ± std) | paper | Δ points | within 3 |",
             "|---|---|---|---|---|---|---|---|"]
    rows = []
    for preset, result in zip(presets, results):
        mean, std = result.mean_std()
        diff = None if mean is None else mean - preset.paper.score
        c = preset.config
        ok = "" if diff is None or preset.paper.table != "II" else ("yes" if abs(diff) <= 0.03 else "**no**")
        lines.append(f"| {preset.name} | {c.subnet} | {'✓' if c.weight_sharing else ''} | {'✓' if c.aux_loss else ''} "
                     f"| {mean_std_label(mean, std)} | {preset.paper.label()} | {signed_points(diff)} | {ok} |")
        rows.append([preset.name, mean, std, preset.paper.score, preset.paper.std, diff, result.status,
                     result.wall_time])
    runs = sum(len(r.rounds) for r in results)
    device = results[0].device
    footer = (f"\n{args.engine} engine, {args.rounds} rounds x {args.epochs} epochs, batch 5, 1000 pairs; "
              f"digits: {source.name}; device: {device}; torch {torch.__version__}; "
              f"{platform.node() or 'this machine'}: {torch.get_num_threads()} threads.\n"
              f"Wall time {wall:.1f} s for {runs} runs (rounds): {wall / runs:.2f} s per run.\n")
    text = "\n".join(lines) + "\n" + footer
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["preset", "mean", "std", "paper", "paper_std", "difference", "status", "wall_time_s"])
    writer.writerows(rows)
    atomic_write_text(args.out.with_suffix(".csv"), buffer.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
