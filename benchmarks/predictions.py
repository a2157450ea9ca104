"""What recording the test predictions costs: the size of a run's predictions.npz (10 rounds x 1,000 pairs) and
the share of a run's time spent computing and writing it (from the last epoch's test outputs, which the
evaluation computes anyway: the probabilities and digits, the kept images, the compressed file), timed inside
real runs.

    python benchmarks/predictions.py [--presets table2-fcn-ws-aux table2-cnn-ws-aux]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from small import add_flag, shrink  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["table2-fcn-ws-aux", "table2-cnn-ws-aux", "table4-cnn-best"])
    add_flag(parser)
    args = parser.parse_args()

    import workbench.engine.batched as batched
    import workbench.records.store as runs
    from workbench.engine import run_configs
    from workbench.records.layout import PREDICTIONS_FILE
    from workbench.paper.data import load_source
    from workbench.paper.presets import find_preset

    os.environ["DIGIT_WORKBENCH_PROCESSES"] = "1"  # every stack in this process, where the timers are
    spent = {"predict": 0.0, "write": 0.0}

    def timed(name, fn):
        def wrapper(*a, **k):
            started = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - started
        return wrapper

    batched.StackReport.predictions = timed("predict", batched.StackReport.predictions)
    runs.predictions_npz = timed("write", runs.predictions_npz)

    source = load_source("auto")
    print(f"digits: {source.name}")
    for name in args.presets:
        config = shrink(find_preset(name).config.replace(device="cpu"), args.small)
        spent.update(predict=0.0, write=0.0)
        started = time.perf_counter()
        (result,) = run_configs([config], source)  # one process: the timers see every step
        trained = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            summary = runs.save_run(result, name, root=Path(tmp))
            size = (summary.path / PREDICTIONS_FILE).stat().st_size
        total = trained + spent["write"]
        share = 100 * (spent["predict"] + spent["write"]) / total
        print(f"{name}: {config.rounds} rounds x {config.pairs} pairs: predictions.npz {size / 1024:.0f} KiB; "
              f"predicting {spent['predict']:.3f} s + writing {spent['write']:.3f} s of {total:.1f} s: {share:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
