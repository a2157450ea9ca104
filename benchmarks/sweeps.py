"""A sweep as a user runs it, from a fresh study: its wall time, its largest process, what it chose on
validation and what that scored on test, beside the paper's figure for each stage.

    python benchmarks/sweeps.py table3-fcn [--workers 2] [--out benchmarks/results/sweep_table3-fcn.md]

Runs `digit-workbench sweep SPEC --workers N` in a new runs folder, then writes a markdown table (the README's
sweep tables are this file's) and the trials CSV beside it (`SPEC-trials.csv`).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from small import add_flag, out_path, small_spec  # noqa: E402

from workbench.format import FINAL_COLUMNS, duration, final_rows
from workbench.fsutil import atomic_write_text
from workbench.sweep.spec import find_spec, load_spec
from workbench.sweep.storage import all_trials, default_storage, final_runs, trials_csv_path
from workbench.sweep.supervisor import SweepRun


def markdown(spec, finals, trials: int, wall: float, peak_mib: float, workers: int) -> str:
    rounds = spec.base.rounds
    header = ("stage", "chosen on validation", f"validation % ({rounds} rounds)", f"test % ({spec.final_rounds} rounds)",
              "paper %")
    rows = final_rows(spec, finals)
    with_paper = any(row[-1] for row in rows)
    width = len(FINAL_COLUMNS) if with_paper else len(FINAL_COLUMNS) - 1
    lines = ["| " + " | ".join(header[:width]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(row[:width]) + " |" for row in rows]
    lines += ["", f"`digit-workbench sweep {spec.name} --workers {workers}`: {duration(wall)} for {trials} trials and "
                  f"the final measurement of {len(finals)} configs; largest process {peak_mib / 1024:.2f} GB; "
                  f"{platform.node() or 'this machine'}, {os.cpu_count()} cores."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", help="a spec of presets/sweeps (not with --small)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    add_flag(parser)
    args = parser.parse_args()
    if args.spec is None and not args.small:
        parser.error("name a spec (or --small)")
    spec_path = small_spec() if args.small else find_spec(args.spec)
    spec = load_spec(spec_path)
    out = out_path(args.small, args.out, ROOT / "benchmarks" / "results" / f"sweep_{spec.name}.md")

    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as runs_root:
        env = dict(os.environ, DIGIT_WORKBENCH_RUNS=runs_root)
        command = [str(Path(sys.executable).parent / "digit-workbench"), "sweep", str(spec_path), "--workers", str(args.workers)]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=ROOT)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            print(f"sweeps.py: the sweep exited with status {done.returncode}", file=sys.stderr)
            return 1
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest process it waited for
        os.environ["DIGIT_WORKBENCH_RUNS"] = runs_root
        sweep = SweepRun(spec, spec.name, default_storage(spec.name))
        sweep.open()
        finals = sweep.measured_before(final_runs(spec, sweep.storage, spec.name), Path(runs_root))
        if len(finals) != len(spec.stages):
            print("sweeps.py: the sweep's final measurements are not all recorded", file=sys.stderr)
            return 1
        trials = [t for t in all_trials(spec, sweep.storage, spec.name) if t.state == "complete"]
        text = markdown(spec, finals, len(trials), wall, peak_mib, args.workers)
        print(text)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
        shutil.copyfile(trials_csv_path(spec.name, sweep.storage_url), out.with_name(f"{spec.name}-trials.csv"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
