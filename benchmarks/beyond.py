"""What each idea beyond the paper is worth, alone and combined: the CNN from beyond-cnn's base (an earlier Table IV
sweep's architecture) with re-pairing, with 30 epochs at lr 0.002, with both (an earlier sweep's choice), and the
beyond-cnn sweep's choice now (`beyond-cnn-best`), against the paper's Table IV config; the paper's Table III FCN
with re-pairing, and `beyond-fcn-best`. 10 rounds each, seed 0, so round r
of every run sees the same pairs and the differences are paired (as `digit-workbench compare` computes them).

    python benchmarks/beyond.py [--out benchmarks/results/beyond.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from small import add_flag, out_path, shrink  # noqa: E402

from workbench.analysis.paired import compare_runs
from workbench.format import comparison_cells, mean_std_label
from workbench.fsutil import atomic_write_text
from workbench.paper.data import load_source
from workbench.paper.presets import find_preset
from workbench.sweep.spec import find_spec, load_spec
from workbench.training.group import NamedRun
from workbench.training.train import train_and_record


def runs(small: bool = False) -> tuple[list[NamedRun], list[NamedRun]]:
    architecture = load_spec(find_spec("beyond-cnn")).base.replace(rounds=10)
    earlier = architecture.replace(repair=True, epochs=30, lr=0.002)  # what an earlier beyond-cnn sweep chose
    cnn = [NamedRun("the paper's Table IV config (`table4-cnn-best`)", find_preset("table4-cnn-best").config),
           NamedRun("beyond-cnn's base architecture", architecture),
           NamedRun("architecture + re-pairing", architecture.replace(repair=True)),
           NamedRun("architecture + 30 epochs, lr 0.002", architecture.replace(epochs=30, lr=0.002)),
           NamedRun("the three (an earlier sweep's choice)", earlier),
           NamedRun("`beyond-cnn-best` (the sweep's choice now: turns, 45 epochs, decay 0.95, alpha 0.398)",
                    find_preset("beyond-cnn-best").config)]
    fcn_paper = find_preset("table3-fcn-best").config
    fcn = [NamedRun("the paper's Table III config (`table3-fcn-best`)", fcn_paper),
           NamedRun("with re-pairing", fcn_paper.replace(repair=True)),
           NamedRun("`beyond-fcn-best` (the beyond-fcn sweep's choice)", find_preset("beyond-fcn-best").config)]
    if small:
        cnn, fcn = ([NamedRun(r.name, shrink(r.config, small)) for r in part] for part in (cnn, fcn))
    return cnn, fcn


def paired(a, b) -> str:
    _, mean, ci, p, _, won, _ = comparison_cells(compare_runs(a, b))
    return f"{mean} {ci}, p {p if p.startswith('<') else '= ' + p}, {won}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/beyond.md")
    add_flag(parser)
    args = parser.parse_args()
    args.out = out_path(args.small, args.out, ROOT / "benchmarks" / "results" / "beyond.md")
    cnn, fcn = runs(args.small)
    source = load_source("auto")
    started = time.perf_counter()
    recorded = train_and_record(cnn + fcn, source)
    wall = time.perf_counter() - started
    summaries = [r.summary for r in recorded]
    c, f = summaries[:len(cnn)], summaries[len(cnn):]
    score = lambda s: mean_std_label(s.mean, s.std)  # noqa: E731
    lines = ["| CNN run (test %, 10 rounds) | against the paper's Table IV config | against beyond-cnn's base |",
             "|---|---|---|",
             f"| {c[0].name}: {score(c[0])} | — | |",
             f"| {c[1].name} ({params(c[1].config)}): {score(c[1])} | "
             f"{paired(c[1], c[0])} | — |"]
    for s in c[2:]:
        lines.append(f"| {s.name}: {score(s)} | {paired(s, c[0])} | {paired(s, c[1])} |")
    lines += ["", "| FCN run (test %, 10 rounds) | against the paper's Table III config |", "|---|---|",
              f"| {f[0].name}: {score(f[0])} | — |"]
    lines += [f"| {s.name}: {score(s)} | {paired(s, f[0])} |" for s in f[1:]]
    lines += ["", f"Mean difference in points, 95 % t interval, paired t-test, rounds won; digits: {source.name}; "
                  f"all {len(summaries)} runs trained together in {wall:.0f} s."]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(args.out, text)
    return 0


def params(config) -> str:
    return (f"KL {config.kl}, HL {config.hl}, BC {config.bc}, K {config.k}, C-KL {config.c_kl}, C-HL {config.c_hl}, "
            f"alpha {config.alpha}")


if __name__ == "__main__":
    sys.exit(main())
