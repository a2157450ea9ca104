"""Table II (or one preset) with the engine of another commit and with this checkout's, alternating, in one
invocation.

    python benchmarks/before_after.py [--before REV] [--preset NAME] [--repeats 3] [--epochs 20] [--rounds 10]

Checks REV (default: HEAD) out into a temporary git worktree, then times `digit-workbench table` (all eight
Table II rows) or, with --preset, `digit-workbench run --preset NAME` (batched engine, CPU, embedded digits, no
records kept in a temporary folder) from that tree and from this one, in the order B A B A ..., each in a fresh
process. The VM's speed drifts, so the figure to quote is the ratio of the medians measured side by side. Then
compares every run's per-round test accuracies, read from the records, between the two trees: a change that
promises the same numbers must print "identical" (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table_run(tree: Path, epochs: int, rounds: int, preset: str | None = None) -> tuple[float, str, dict]:
    records = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    env = dict(os.environ, PYTHONPATH=str(tree), DIGIT_WORKBENCH_RUNS=str(records))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # both trees compile once, as an installed package would
    what = ["run", "--preset", preset] if preset else ["table"]
    cmd = [sys.executable, "-m", "workbench.cli", *what, "--device", "cpu",
           "--data", "embedded", "--epochs", str(epochs), "--rounds", str(rounds)]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"before_after: {tree}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    accuracies = round_accuracies(records)
    shutil.rmtree(records, ignore_errors=True)
    return wall, done.stdout, accuracies


def round_accuracies(records: Path) -> list[tuple[str, dict, list[float]]]:
    """Each run's preset, config and per-round test accuracies, from the records a run wrote. Runs are matched by
    what they trained, never by name: a tree may name the same run otherwise."""
    out = []
    for summary in sorted(records.glob("*/summary.json")):
        data = json.loads(summary.read_text())
        out.append((data.get("preset") or "", data["config"], data["round_acc"]))
    return out


def by_config(every: list[list[tuple[str, dict, list[float]]]]) -> list[dict[str, list[float]]]:
    """Each invocation's accuracies keyed by preset and config, on the settings every record holds (a field one
    tree adds with its default does not part two runs that trained alike)."""
    common = set.intersection(*(set(config) for runs in every for _, config, _ in runs)) if any(every) else set()
    return [{f"{preset} " + " ".join(f"{k}={config[k]}" for k in sorted(common)): accs for preset, config, accs in runs}
            for runs in every]


def scores(output: str, preset: str | None) -> list[str]:
    if preset:  # the run's result line: "... test 96.8 ± 0.5 % ..."
        return [line for line in output.splitlines() if re.search(r"±", line)][-3:]
    return [line for line in output.splitlines() if re.search(r"table2-", line)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD", help="the commit to compare against (default: HEAD)")
    parser.add_argument("--preset", help="time `run --preset PRESET` instead of Table II")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--small", action="store_true", help="`run --preset basic`, one epoch, against HEAD: the "
                                                              "test suite's run")
    args = parser.parse_args()
    if args.small:
        args.preset, args.repeats, args.epochs, args.rounds = args.preset or "basic", 1, 1, 2
    with tempfile.TemporaryDirectory(prefix="wb-before-") as tmp:
        before = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)
        try:
            times: dict[str, list[float]] = {"before": [], "after": []}
            outputs, accuracies = {}, {}
            for i in range(args.repeats):
                for label, tree in (("before", before), ("after", ROOT)):
                    wall, out, accs = table_run(tree, args.epochs, args.rounds, args.preset)
                    times[label].append(wall)
                    outputs[label] = out
                    accuracies.setdefault(label, []).append(accs)
                    print(f"run {i + 1} {label:6} {wall:6.1f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
    med = {k: statistics.median(v) for k, v in times.items()}
    what = f"run --preset {args.preset}" if args.preset else "Table II (8 rows)"
    print(f"\n{what}, {args.rounds} rounds x {args.epochs} epochs, {os.cpu_count()} CPUs, before = {args.before}")
    for label in ("before", "after"):
        print(f"  {label:6} median {med[label]:6.1f} s  runs {', '.join(f'{t:.1f}' for t in times[label])}")
    print(f"  after / before: {med['after'] / med['before']:.3f}")
    for label in ("before", "after"):
        print(f"\n{label}:")
        print("\n".join(scores(outputs[label], args.preset)))
    every = by_config(accuracies["before"] + accuracies["after"])
    if all(accs == every[0] for accs in every):
        rounds = sum(len(a) for a in every[0].values())
        print(f"\nper-round accuracies: identical in every invocation ({len(every[0])} runs, {rounds} rounds)")
        return
    print("\nper-round accuracies DIFFER:")
    for key in sorted(set().union(*every)):
        seen = {str(accs.get(key)) for accs in every}
        if len(seen) > 1:
            print(f"  {key}: " + " | ".join(sorted(seen)))
    sys.exit(1)


if __name__ == "__main__":
    main()
