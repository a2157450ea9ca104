"""What keeping runs resumable costs: Table II trained and recorded with its per-epoch checkpoints (resume.npz
in each run's claimed folder, the states of every round after each epoch taken off the stacks) and without them,
alternated A B A B, medians; and the size and write time of the largest preset's checkpoint.

    python benchmarks/checkpoints.py [--pairs 2]

Without checkpoints is the same call with no folder claimed (training.claim_folders patched to claim none), so
the records, weights included, are written alike; the difference is the checkpoints' whole cost, states taken
off the stacks and written. The time the calling process spends in the checkpoint calls (states kept, files
built and written) is printed too: on a loaded VM it is the steadier figure. Batched engine, CPU, the embedded
digits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from small import add_flag, shrink  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2, help="A B pairs (default 2)")
    add_flag(parser)
    args = parser.parse_args()
    if args.small:
        args.pairs = 1

    import numpy as np

    import workbench.training.train as training
    from workbench.engine.state import RoundState
    from workbench.fsutil import atomic_write_bytes
    from workbench.paper.data import load_source
    from workbench.paper.models import build_model
    from workbench.paper.presets import TABLE_II, load_presets
    from workbench.records.checkpoint import states_npz

    presets = load_presets()
    source = load_source("embedded")
    claim = training.claim_folders
    spent = {"reached": 0.0, "writes": 0}
    reached, write = training.Checkpoints.reached, training.Checkpoints.write

    def timed_reached(self, states):  # this process's share: states kept, files built and written
        started = time.perf_counter()
        reached(self, states)
        spent["reached"] += time.perf_counter() - started

    def counted_write(self, i):
        spent["writes"] += 1
        write(self, i)

    training.Checkpoints.reached, training.Checkpoints.write = timed_reached, counted_write

    def cpu_seconds() -> float:  # this process and its finished children (the stack workers): steadier than the
        import resource  # wall clock on a VM whose neighbours take its cores at times

        return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
                   for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))

    def table2(checkpoints: bool) -> tuple[float, float, int]:
        training.claim_folders = claim if checkpoints else (lambda *a, **k: {})
        runs = [training.NamedRun.of(shrink(presets[name].config.replace(device="cpu"), args.small), presets[name])
                for name in TABLE_II]
        spent.update(reached=0.0, writes=0)
        with tempfile.TemporaryDirectory() as root:
            started, cpu = time.perf_counter(), cpu_seconds()
            recorded = training.train_and_record(runs, source, runs_root=Path(root))
            seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
            kept = sum(1 for r in recorded if (r.summary.path / "resume.npz").exists())
        return seconds, cpu, kept

    times: dict[bool, list[float]] = {True: [], False: []}
    cpus: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.pairs):
        for checkpoints in (True, False):
            seconds, cpu, kept = table2(checkpoints)
            times[checkpoints].append(seconds)
            cpus[checkpoints].append(cpu)
            print(f"Table II {'with' if checkpoints else 'without'} checkpoints: {seconds:.1f} s, CPU {cpu:.1f} s "
                  f"({kept} records keep resume.npz; {spent['writes']} checkpoint files written, "
                  f"{spent['reached']:.2f} s in the training process's checkpoint calls)", flush=True)
    training.claim_folders = claim
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"median: with {on:.1f} s, without {off:.1f} s: checkpoints cost {100 * (on - off) / off:+.2f} % "
          f"of Table II's time")
    on, off = statistics.median(cpus[True]), statistics.median(cpus[False])
    print(f"median CPU time: with {on:.1f} s, without {off:.1f} s: checkpoints cost {100 * (on - off) / off:+.2f} % "
          "of Table II's CPU time")

    # all of the work in one process, each part timed: taking the states off the stacks (every one of them, as
    # the workers would), building the files and writing them
    import os

    import workbench.engine.state as state

    parts = {"take": 0.0}
    take = state.Taking.take

    def timed_take(self, on_states, states):
        started = time.perf_counter()
        take(self, on_states, states)
        parts["take"] += time.perf_counter() - started

    state.Taking.take = timed_take
    os.environ["DIGIT_WORKBENCH_PROCESSES"] = "1"
    seconds, _, _ = table2(True)
    print(f"in one process: Table II {seconds:.1f} s; taking states {parts['take']:.2f} s, checkpoint files "
          f"{spent['reached']:.2f} s ({spent['writes']} written): "
          f"{100 * (parts['take'] + spent['reached']) / seconds:.2f} % of its time, before the records' own "
          "resume.npz")

    config = shrink(presets["table4-cnn-best"].config, args.small)
    shapes = {n: tuple(p.shape) for n, p in build_model(config).named_parameters()}
    rng = np.random.default_rng(0)
    part = lambda: {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}  # noqa: E731
    states = {r: RoundState(10, 4000.0, 1e-3, part(), part(), part()) for r in range(config.rounds)}
    with tempfile.TemporaryDirectory() as root:
        writes = []
        for _ in range(3):
            started = time.perf_counter()
            data = states_npz(states, [])
            atomic_write_bytes(Path(root) / "resume.npz", data)
            writes.append(time.perf_counter() - started)
    print(f"table4-cnn-best, {config.rounds} rounds: one checkpoint is {len(data) / 2**20:.2f} MB, built and "
          f"written in {statistics.median(writes):.3f} s (median of 3); written at most every "
          f"{statistics.median(writes) / training_share():.1f} s of training")
    return 0


def training_share() -> float:
    from workbench.records.checkpoint import CHECKPOINT_SHARE

    return CHECKPOINT_SHARE


if __name__ == "__main__":
    sys.exit(main())
