"""What keeping a run's trained networks costs: the size of weights.npz for every preset (10 rounds), the time to
build and write it whole, and the share of a real Table II run's time that keeping its networks takes.

    python benchmarks/weights.py [--repeats 5]

Per preset, weights.npz is written from rounds of the preset's shapes (the file's cost depends on them alone),
median of --repeats, each into a fresh folder. Then Table II is trained once (batched engine, CPU, the embedded
digits), its eight records saved with and without their networks, alternating, and the difference in saving is
set against the training time; the engine's copy of every replica's weights to the CPU (kept_weights) is timed
on the trained stacks' shapes too.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from small import add_flag, shrink  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    add_flag(parser)
    args = parser.parse_args()
    if args.small:
        args.repeats = 1

    import torch

    from workbench.engine import run_configs
    from workbench.engine.base import RoundResult, kept_weights
    from workbench.fsutil import atomic_write_bytes
    from workbench.paper.data import load_source
    from workbench.paper.models import build_model
    from workbench.paper.presets import TABLE_II, load_presets
    from workbench.records.store import save_run
    from workbench.records.weights import weights_npz

    torch.set_num_threads(2)
    print("weights.npz per preset, 10 rounds (build and write whole, median of "
          f"{args.repeats}):")
    print(f"{'preset':<20} {'weights':>9} {'file MB':>8} {'seconds':>8}")
    for name, preset in list(load_presets().items())[:2 if args.small else None]:
        config = preset.config.replace(rounds=10)
        shapes = {n: tuple(p.shape) for n, p in build_model(config).named_parameters()}
        rng = np.random.default_rng(0)
        rounds = [RoundResult(round=r, seed=r, status="done",
                              weights={n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()})
                  for r in range(10)]
        with tempfile.TemporaryDirectory() as folder:
            def write():
                data = weights_npz(rounds, "all")
                atomic_write_bytes(Path(folder) / "weights.npz", data)
            seconds = median_seconds(write, args.repeats)
            size = (Path(folder) / "weights.npz").stat().st_size
        count = sum(int(np.prod(s)) for s in shapes.values())
        print(f"{name:<20} {count:>9} {size / 2**20:>8.2f} {seconds:>8.3f}")

    presets = load_presets()
    source = load_source("embedded")
    configs = [shrink(presets[name].config.replace(device="cpu"), args.small) for name in TABLE_II]
    started = time.perf_counter()
    results = run_configs(configs, source)
    trained = time.perf_counter() - started
    bare = [dataclasses.replace(r, rounds=[dataclasses.replace(x, weights=None) for x in r.rounds]) for r in results]
    with_weights, without = [], []
    for _ in range(args.repeats):
        for kept, out in ((results, with_weights), (bare, without)):
            with tempfile.TemporaryDirectory() as folder:
                begun = time.perf_counter()
                for name, result in zip(TABLE_II, kept):
                    save_run(result, name, root=Path(folder))
                out.append(time.perf_counter() - begun)
    models = [build_model(c) for c in configs for _ in range(c.rounds)]
    copy = median_seconds(lambda: [kept_weights(m.named_parameters()) for m in models], args.repeats)
    extra = statistics.median(with_weights) - statistics.median(without)
    size = sum(sum(a.nbytes for x in r.rounds for a in (x.weights or {}).values()) for r in results)
    print(f"\nTable II (8 runs x 10 rounds x 20 epochs), trained in {trained:.1f} s")
    print(f"  saving the 8 records: {statistics.median(without):.3f} s without their networks, "
          f"{statistics.median(with_weights):.3f} s with them (medians of {args.repeats}, alternated)")
    print(f"  the networks' {size / 2**20:.2f} MB add {extra:.3f} s to saving and {copy:.4f} s to copy off the "
          f"stacks: {100 * (extra + copy) / trained:.2f} % of the training time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
