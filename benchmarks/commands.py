"""How long the commands that do not train take, each in a fresh process as a user types it (the installed
command, interpreter start included): the median of a few tries each, and whether the command imported torch.

    python benchmarks/commands.py [--repeats 5] [--out benchmarks/results/commands.txt]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from small import add_flag, out_path  # noqa: E402

from workbench.fsutil import atomic_write_text

COMMANDS = [["presets"], ["export", "--out", "export.csv"], ["data", "info"], ["sweep", "--show", "table3-fcn"],
            ["--help"], ["run", "--help"], ["table", "--help"], ["sweep", "--help"], ["compare", "--help"],
            ["plot", "--help"], ["export", "--help"], ["data", "--help"], ["presets", "--help"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/commands.txt")
    add_flag(parser)
    args = parser.parse_args()
    args.out = out_path(args.small, args.out, ROOT / "benchmarks" / "results" / "commands.txt")
    if args.small:
        args.repeats = 1
    command = str(Path(sys.executable).parent / "digit-workbench")
    lines = []
    with tempfile.TemporaryDirectory(prefix="commands-bench-") as cwd:
        env = dict(os.environ, DIGIT_WORKBENCH_RUNS=str(Path(cwd) / "runs"), PYTHONPROFILEIMPORTTIME="1")
        for argv in COMMANDS:
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                done = subprocess.run([command, *argv], cwd=cwd, env=env, capture_output=True, text=True)
                times.append(time.perf_counter() - started)
            torch = any(line.rstrip().endswith("| torch") for line in done.stderr.splitlines())
            lines.append(f"{' '.join(argv):28s} median {statistics.median(times):.2f} s "
                         f"({min(times):.2f}-{max(times):.2f}); exit {done.returncode}; torch imported: {torch}")
            print(lines[-1])
    every = [float(line.split("median ")[1].split(" s")[0]) for line in lines]
    lines.append(f"all {len(COMMANDS)} commands: medians {min(every):.2f}-{max(every):.2f} s over {args.repeats} "
                 f"tries each")
    print(lines[-1])
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
