"""CUDA checks for the batched engine, for a machine with an NVIDIA GPU.

    python benchmarks/cuda_check.py [--small]

--small (the test suite's run) loads every module it uses and stops on a machine without CUDA; with one, it
checks the first stack only.

For each Table II stack (20 replicas): trains steps with PyTorch's sync debug mode set to "error", so any
host synchronisation inside the step loop raises; then times steps (mean of 200, after warm-up), launched one
by one, as a replayed one-step CUDA graph, and as one graph of a whole epoch (200 steps, EpochProgram). Then
trains one small config with and without CUDA graphs and compares the rounds (dropout off: the same numbers up
to float rounding).
The exactness tests run on the GPU with DIGIT_WORKBENCH_TEST_DEVICE=cuda pytest tests/test_batched.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.engine import run_configs, stack_groups
from workbench.engine.adam import StackAdam
from workbench.engine.cuda_graph import EpochProgram, StepGraph
from workbench.engine.loss import loss_weights, step_scales
from workbench.engine.stacked import StackedNet, train_step
from workbench.paper.config import RunConfig
from workbench.paper.data import load_source
from workbench.paper.presets import TABLE_II, find_preset
from workbench.paper.randomness import DropoutStream, init_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the first stack only; without CUDA, stop after loading")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0 if args.small else 1
    device = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device)}")
    configs = [find_preset(name).config for name in TABLE_II]
    for group in stack_groups(configs)[:1 if args.small else None]:
        runs = [configs[i] for i in group]
        replicas = [(c, r) for c in runs for r in range(c.rounds)]
        R, B = len(replicas), runs[0].batch_size
        net = StackedNet([init_model(c, r) for c, r in replicas], device, B)
        optimizer = StackAdam(net, runs[0].lr, lr_on_device=True)
        stream = DropoutStream([(c.seed, r) for c, r in replicas], net.dropout_layout, device)
        stream.start_epoch(1)
        draws = stream.step(0)
        w_bce, w_aux = loss_weights([c for c, _ in replicas], device)
        x = torch.rand(R, B, 2, 14, 14, device=device) * 255
        classes = torch.randint(0, 10, (R, B, 2), device=device)
        target = (classes[..., 0] <= classes[..., 1]).float()

        onehot = torch.nn.functional.one_hot(classes, 10).float()
        scales = step_scales(w_bce, w_aux, True, B)

        def step():
            return train_step(net, optimizer, x, target, onehot, draws, *scales)

        for _ in range(20):
            step()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(50):
                out, _ = step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        finite = bool(torch.isfinite(out).all())
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(200):
            step()
        torch.cuda.synchronize()
        per_step = (time.perf_counter() - started) / 200
        graph = StepGraph.capture(net, optimizer, (x, target, onehot, draws), scales)
        if graph is None:
            graphed = "capture failed"
        else:
            for _ in range(20):
                graph.replay((x, target, onehot, draws))
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(200):
                graph.replay((x, target, onehot, draws))
            torch.cuda.synchronize()
            graphed = f"{(time.perf_counter() - started) / 200 * 1e3:.3f} ms per step as a graph"
        steps = 200  # an epoch of the protocol: 1000 pairs in batches of 5
        epoch_inputs = (torch.rand(R, steps * B, 2, 14, 14, device=device) * 255,
                        target.repeat(1, steps), onehot.repeat(1, steps, 1, 1),
                        None if draws is None else draws.unsqueeze(1).repeat(1, steps, 1))
        program = EpochProgram(net, optimizer, epoch_inputs, steps, B, scales, keep_digits=True)
        if program.capture():
            program.run(epoch_inputs)
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(3):
                program.run(epoch_inputs)
            torch.cuda.synchronize()
            graphed += f", {(time.perf_counter() - started) / (3 * steps) * 1e3:.3f} ms per step as one epoch graph"
        else:
            graphed += ", epoch capture failed"
        name = TABLE_II[group[0]].replace("-plain", "")
        print(f"{name:<16} R={R}: no host sync in 50 steps; outputs finite: {finite}; "
              f"{per_step * 1e3:.3f} ms per step launched one by one, {graphed}")

    source = load_source("auto")
    for dropout in (0.0, 0.2):
        config = RunConfig(subnet="cnn", dropout=dropout, rounds=4, epochs=3, pairs=300, batch_size=5, device="cuda")
        found = {}
        for graphs in ("0", "1"):
            os.environ["DIGIT_WORKBENCH_CUDA_GRAPHS"] = graphs
            found[graphs] = run_configs([config], source)[0]
        eager, graphed = found["0"], found["1"]
        print(f"dropout {dropout}: eager   test acc {[round(r.test_acc, 4) for r in eager.rounds]} "
              f"train loss {[round(r.train_loss, 5) for r in eager.rounds]} ({eager.wall_time:.1f} s)")
        print(f"dropout {dropout}: graphed test acc {[round(r.test_acc, 4) for r in graphed.rounds]} "
              f"train loss {[round(r.train_loss, 5) for r in graphed.rounds]} ({graphed.wall_time:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
