"""Every benchmark runs: each in its small mode (`--small`: the same code on a run of seconds, written to a
temporary folder), so that a renamed attribute or a moved module fails here rather than the next time someone
measures. None may touch benchmarks/results/, where the measured figures live."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
HELPERS = {"small.py"}  # imported by the benchmarks, not one itself
RUNS = {  # a benchmark with more than one mode runs each
    "profile_step.py": [["--small"], ["--small", "--scaling", "1,2", "--preset", "table2-fcn-ws-aux"]],
    "readme.py": [[]],  # the README's figures checked against results/: quick as it is
}


GIT = pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs this checkout's git history (CI clones it)")


def results_state() -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in (BENCHMARKS / "results").iterdir()}


def cases():
    for path in sorted(BENCHMARKS.glob("*.py")):
        if path.name in HELPERS:
            continue
        marks = [GIT] if path.name == "before_after.py" else []  # a git worktree of HEAD
        for args in RUNS.get(path.name, [["--small"]]):
            yield pytest.param(path.name, args, id=" ".join([path.stem, *args[1:]]), marks=marks)


@pytest.mark.parametrize("name, args", list(cases()))
def test_every_benchmark_runs_in_its_small_mode(name, args, tmp_path):
    before = results_state()
    env = {**os.environ, "DIGIT_WORKBENCH_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{name} {' '.join(args)}: exit {done.returncode}\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    assert results_state() == before, "a small run wrote into benchmarks/results/"


@pytest.mark.parametrize("name", sorted(p.name for p in BENCHMARKS.glob("*.sh")))
def test_every_benchmark_script_parses(name):
    """The GPU scripts run only on a lent GPU machine; here they must at least be whole shell scripts."""
    assert subprocess.run(["bash", "-n", str(BENCHMARKS / name)], capture_output=True).returncode == 0


@GIT
def test_the_fresh_clone_script_finds_every_readme_command():
    done = subprocess.run(["bash", str(BENCHMARKS / "fresh_clone.sh"), "--small"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every one a command of digit-workbench" in done.stdout
