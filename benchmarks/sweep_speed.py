"""A sweep with the old worker (one trial at a time) and the new one (batches; optionally pruning), side by side
on this machine: wall time end to end, trials, and what each stage chose on validation.

    git worktree add /tmp/old-tree <commit before batches>
    python benchmarks/sweep_speed.py table3-fcn --old /tmp/old-tree [--workers 2] [--pruner median] [--repeat 1]
                                     [--old-label "old worker"] [--new-label "new worker"] [--out FILE]

Each variant runs `digit-workbench sweep SPEC --workers N` from its own source tree, in a fresh runs folder, the
final measurements included; with --repeat K the variants alternate K times and the medians are compared. Writes
benchmarks/results/sweep_speed_SPEC.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from small import add_flag, out_path, small_spec  # noqa: E402

from workbench.format import duration, params_text
from workbench.fsutil import atomic_write_text
from workbench.sweep.spec import load_spec
from workbench.sweep.storage import all_trials, default_storage, final_runs, open_storage

RUN = "import runpy; runpy.run_module('workbench.cli', run_name='__main__')"  # cli.py before, cli/ since


def run_variant(tree: Path, spec_path: Path, workers: int) -> dict:
    """One sweep from `tree`'s code; returns its wall time, trials by state and each stage's choice."""
    with tempfile.TemporaryDirectory(prefix="sweep-speed-") as runs_root:
        # the tree first; what PYTHONPATH already holds (a GPU machine's carried packages) stays behind it
        path = os.pathsep.join(p for p in (str(tree), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, DIGIT_WORKBENCH_RUNS=runs_root, PYTHONPATH=path)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", RUN, "sweep", str(spec_path), "--workers", str(workers)],
                              env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"sweep_speed.py: the sweep from {tree} exited {done.returncode}: {done.stderr[-2000:]}")
        os.environ["DIGIT_WORKBENCH_RUNS"] = runs_root
        spec = load_spec(spec_path)
        storage = open_storage(default_storage(spec.name))
        trials = all_trials(spec, storage, spec.name)
        chosen = [(label.split(" after ", 1)[1], config) for label, config, _ in final_runs(spec, storage, spec.name)]
        busy = sum(t.seconds or 0.0 for t in trials if t.state in ("complete", "pruned"))
        return {"wall": wall, "trials": len(trials), "busy": busy,
                "states": {s: sum(t.state == s for t in trials) for s in ("complete", "pruned", "fail")},
                "chosen": chosen, "spec": spec}


def stage_params(spec, chosen) -> list[str]:
    """What each stage chose: its own parameters only."""
    out = []
    for (name, config), stage in zip(chosen, spec.stages):
        names = list(stage.grid or stage.ranges)
        out.append(f"{name}: {params_text({n: getattr(config, n) for n in names})}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", nargs="?", help="a spec of presets/sweeps (not with --small)")
    parser.add_argument("--old", type=Path, help="a source tree of the old worker (a git worktree; --small: this one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pruner", default=None, help="also run the new worker with this pruner")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--old-label", default="old worker", help="what the old tree is, in the table")
    parser.add_argument("--new-label", default="new worker", help="what this tree is, in the table")
    add_flag(parser)
    args = parser.parse_args()
    if args.small:  # this tree against itself, on a spec of seconds
        args.old, args.spec, args.workers = args.old or ROOT, "small", 1
    elif args.spec is None or args.old is None:
        parser.error("a spec and --old TREE are needed (or --small)")
    args.old = args.old.resolve()  # each sweep runs in its own tree's folder
    spec_path = small_spec() if args.small else ROOT / "presets" / "sweeps" / f"{args.spec}.toml"
    old_spec = spec_path if args.small else args.old / "presets" / "sweeps" / f"{args.spec}.toml"
    variants = {args.old_label: (args.old, old_spec), args.new_label: (ROOT, spec_path)}
    with tempfile.TemporaryDirectory(prefix="sweep-speed-spec-") as folder:
        if args.pruner:
            pruned = Path(folder) / f"{args.spec}.toml"
            pruned.write_text(f'pruner = "{args.pruner}"\n' + spec_path.read_text())
            variants[f"{args.new_label}, {args.pruner} pruner"] = (ROOT, pruned)
        results: dict[str, list[dict]] = {name: [] for name in variants}
        load = os.getloadavg()[0]
        out = out_path(args.small, args.out, ROOT / "benchmarks" / "results" / f"sweep_speed_{args.spec}.md")
        for _ in range(args.repeat):
            for name, (tree, path) in variants.items():
                results[name].append(run_variant(tree, path, args.workers))
                print(f"{name}: {results[name][-1]['wall']:.1f} s", flush=True)
                # written after every variant: a run stopped at a time limit keeps the variants it finished
                atomic_write_text(out, report(args, results, load))
    print(out.read_text())
    return 0


def where() -> str:
    """The machine and what trained: the GPU by name where the sweeps' device `auto` finds one."""
    import torch
    trained_on = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    return f"{platform.node() or 'this machine'}, {os.cpu_count()} cores, {trained_on}"


def report(args, results: dict[str, list[dict]], load: float) -> str:
    """The table so far: the variants that have finished, each against the old worker's median once it has one."""
    results = {name: runs for name, runs in results.items() if runs}
    olds = results.get(args.old_label)
    old = statistics.median(r["wall"] for r in olds) if olds else float("nan")
    repeats = max(len(r) for r in results.values())
    lines = [f"| `sweep {args.spec} --workers {args.workers}` | wall (median of {repeats}) "
             f"| against the {args.old_label} | trials: complete / pruned / failed | training seconds in trials "
             "| what the stages chose |",
             "|---|---|---|---|---|---|"]
    for name, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        speed = f"{old / wall:.2f}x" if olds else "—"
        last = runs[-1]
        states = last["states"]
        lines.append(f"| {name} | {duration(wall)} | {speed} | {states['complete']} / {states['pruned']} "
                     f"/ {states['fail']} | {last['busy']:.0f} | "
                     f"{'; '.join(stage_params(last['spec'], last['chosen']))} |")
    final_rounds = next(iter(results.values()))[0]["spec"].final_rounds
    lines += ["", f"Each variant from its own source tree, a fresh runs folder, the final {final_rounds}-round "
                  f"measurements included; {where()}, load {load:.1f} at the start; the variants alternated "
                  f"{repeats} time(s)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
