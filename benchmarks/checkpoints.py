"""What keeping runs resumable costs: Table II trained and recorded with its per-epoch checkpoints (resume.npz
in each run's claimed folder, the states of every round after each epoch taken off the stacks) and without them,
alternated A B A B, medians; and the size and write time of the largest preset's checkpoint.

    python benchmarks/checkpoints.py [--pairs 2]

Without checkpoints is the same call with no folder claimed (training.claim_folders patched to claim none), so
the records, weights included, are written alike; the difference is the checkpoints' whole cost, states taken
off the stacks and written. Batched engine, CPU, the embedded digits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2, help="A B pairs (default 2)")
    args = parser.parse_args()

    import numpy as np

    import workbench.training as training
    from workbench.data import load_source
    from workbench.engine.state import RoundState
    from workbench.fsutil import atomic_write_bytes
    from workbench.models import build_model
    from workbench.presets import TABLE_II, load_presets
    from workbench.resume import states_npz

    presets = load_presets()
    source = load_source("embedded")
    claim = training.claim_folders

    def table2(checkpoints: bool) -> tuple[float, int]:
        training.claim_folders = claim if checkpoints else (lambda *a, **k: {})
        runs = [training.NamedRun.of(presets[name].config.replace(device="cpu"), presets[name]) for name in TABLE_II]
        with tempfile.TemporaryDirectory() as root:
            started = time.perf_counter()
            recorded = training.train_and_record(runs, source, runs_root=Path(root))
            seconds = time.perf_counter() - started
            kept = sum(1 for r in recorded if (r.summary.path / "resume.npz").exists())
        return seconds, kept

    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.pairs):
        for checkpoints in (True, False):
            seconds, kept = table2(checkpoints)
            times[checkpoints].append(seconds)
            print(f"Table II {'with' if checkpoints else 'without'} checkpoints: {seconds:.1f} s "
                  f"({kept} records keep resume.npz)", flush=True)
    training.claim_folders = claim
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"median: with {on:.1f} s, without {off:.1f} s: checkpoints cost {100 * (on - off) / off:+.2f} % "
          f"of Table II's time")

    config = presets["table4-cnn-best"].config
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
    from workbench.resume import CHECKPOINT_SHARE

    return CHECKPOINT_SHARE


if __name__ == "__main__":
    sys.exit(main())
