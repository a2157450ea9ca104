"""Where a training step of one stack spends its time, per layer kind and per layer shape.

    python benchmarks/profile_step.py [--preset table4-cnn-best] [--replicas 5] [--steps 300]

Builds the stack a process trains for the preset (`--replicas` rounds of it: table4-cnn-best's ten rounds train
as two processes of five on a 2-core machine), runs `--steps` training steps on one thread after 10 of warm-up,
and times every layer's forward and backward and every Adam call with a wall clock around each (the CPU is
synchronous, so the figures add up to the step). "other" is the rest: the loss gradients and the dispatch
between layers. Also prints the weight traffic of a step and the bandwidth it amounts to.

    python benchmarks/profile_step.py --scaling 3,6,15,30 [--preset A,B] [--repeat 3] [--device cpu|cuda]
                                      [--out results/stack_scaling_DEVICE.txt]

What a stack of more replicas costs per replica: the time of a step (eager, no CUDA graph) divided by the
replicas, for each count, the counts alternated `--repeat` times (medians). Where it stays flat, stacking a
stage's trials gains nothing on that device; where it falls, that is the most a sweep's batches can gain.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.engine import adam, layers, loss, stacked
from workbench.engine.batched import EpochTrainer, one_thread, replica_pairs
from workbench.fsutil import atomic_write_text
from workbench.paper.data import load_source
from workbench.paper.presets import find_preset
from workbench.paper.randomness import init_model

KINDS = {layers.StackedLinear: "linear", layers.StackedConv: "convolution", layers.StackedActivation:
         "activation + dropout", layers.StackedMaxPool: "max-pool", layers.StackedToMaps: "layout (to maps)",
         layers.StackedFlatten: "layout (flatten)"}


def label(layer) -> str:
    kind = KINDS[type(layer)]
    if isinstance(layer, (layers.StackedLinear, layers.StackedConv)):
        w = layer.weight
        shape = (f"{w.shape[1]}->{w.shape[2]}" if isinstance(layer, layers.StackedLinear)
                 else f"{w.shape[1]}->{layer.out_channels} k{w.shape[2]}")
        return f"{kind} {shape}"
    return kind


def stack_steps(config, count: int, device: torch.device, source):
    """The stack a process trains for `count` rounds of `config`, and a function running `steps` of its steps
    (its first epoch's batches, its own dropout draws)."""
    replicas = [(0, config, r) for r in range(count)]
    train, _, _ = replica_pairs(replicas, source, 0, device)
    net = stacked.StackedNet([init_model(config, r) for r in range(count)], device, config.batch_size)
    trainer = EpochTrainer(net, replicas, device)
    trainer.stream.start_epoch(1)
    scales = loss.step_scales(trainer.w_bce, trainer.w_aux, trainer.any_aux, config.batch_size)
    onehot = F.one_hot(train.classes, 10).float()
    b, n = config.batch_size, config.pairs

    def run(steps):
        for s in range(steps):
            part = slice((s * b) % n, (s * b) % n + b)
            stacked.train_step(net, trainer.optimizer, train.input[:, part], train.target[:, part],
                               onehot[:, part], trainer.stream.step(s), *scales)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return net, trainer, run


def scaling(args) -> int:
    """Per replica-step time against the stack's size, for each preset."""
    device = torch.device(args.device)
    counts = [int(c) for c in args.scaling.split(",")]
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu, one thread, {os.cpu_count()} cores"
    lines = [f"a step's time per replica as the stack grows ({args.steps} steps after 10 of warm-up, eager; the "
             f"counts alternated {args.repeat} times, medians); {platform.node() or 'this machine'}, {where}, "
             f"load {os.getloadavg()[0]:.1f} at the start", ""]
    source = load_source("embedded")
    with one_thread():
        for name in args.preset.split(","):
            config = find_preset(name).config.replace(device=device.type)
            runs = {}
            for count in counts:
                net, _, run = stack_steps(config, count, device, source)
                run(10)
                runs[count] = run
            per_replica: dict[int, list[float]] = {c: [] for c in counts}
            for _ in range(args.repeat):
                for count, run in runs.items():
                    started = time.perf_counter()
                    run(args.steps)
                    per_replica[count].append(1e3 * (time.perf_counter() - started) / args.steps / count)
            ms = {c: statistics.median(v) for c, v in per_replica.items()}
            weights = net.flat.numel() // counts[-1]
            first, last = counts[0], counts[-1]
            lines.append(f"{name} ({weights / 1e6:.3f} M weights a replica): "
                         + ", ".join(f"{c} replicas {ms[c]:.3f} ms" for c in counts)
                         + f" a replica-step; {last} against {first}: {ms[first] / ms[last]:.2f}x")
            print(lines[-1], flush=True)
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="table4-cnn-best", help="with --scaling, several: a,b")
    parser.add_argument("--replicas", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--scaling", default=None, help="replica counts, e.g. 3,6,15,30")
    parser.add_argument("--repeat", type=int, default=3, help="with --scaling: alternations")
    parser.add_argument("--device", default="cpu", help="with --scaling: cpu or cuda")
    parser.add_argument("--out", type=Path, default=None, help="with --scaling: write the lines here too")
    parser.add_argument("--small", action="store_true", help="a few steps of two replicas: the test suite's run")
    args = parser.parse_args()
    if args.small:
        args.replicas, args.steps, args.repeat = 2, 3, 1
    if args.scaling:
        return scaling(args)

    config = find_preset(args.preset).config.replace(device="cpu")
    device = torch.device("cpu")
    times: dict[str, float] = collections.defaultdict(float)
    kind_times: dict[str, float] = collections.defaultdict(float)

    def timed(method, name):
        def wrapper(self, *a):
            started = time.perf_counter()
            result = method(self, *a)
            spent = time.perf_counter() - started
            times[f"{label(self)} {name}"] += spent
            kind_times[KINDS[type(self)]] += spent
            return result
        return wrapper

    for cls in KINDS:
        cls.forward = timed(cls.forward, "forward")
        cls.backward = timed(cls.backward, "backward")
    adam_span = adam.StackAdam.step_span

    def timed_adam(self, start, end):  # named apart from the module: a local `adam` made it unbound above
        started = time.perf_counter()
        adam_span(self, start, end)
        spent = time.perf_counter() - started
        times["Adam"] += spent
        kind_times["Adam"] += spent

    adam.StackAdam.step_span = timed_adam

    with one_thread():
        net, trainer, run = stack_steps(config, args.replicas, device, load_source("embedded"))
        run(10)
        times.clear()
        kind_times.clear()
        started = time.perf_counter()
        run(args.steps)
        total = time.perf_counter() - started

    per_step = 1e3 * total / args.steps
    weights = net.flat.numel()
    print(f"{args.preset}, {args.replicas} replicas in one stack, one thread: {per_step:.2f} ms a step "
          f"({per_step / args.replicas:.2f} ms a replica-step); {weights / 1e6:.2f} M weights in the stack "
          f"(Adam {'layer by layer' if trainer.optimizer.by_layer else 'in one call'})")
    print("\nper layer kind:")
    for kind, spent in sorted(kind_times.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<24} {1e3 * spent / args.steps:7.2f} ms  {100 * spent / total:5.1f} %")
    other = total - sum(kind_times.values())
    print(f"  {'other (loss, dispatch)':<24} {1e3 * other / args.steps:7.2f} ms  {100 * other / total:5.1f} %")
    print("\nper layer:")
    for name, spent in sorted(times.items(), key=lambda kv: -kv[1])[:14]:
        print(f"  {name:<36} {1e3 * spent / args.steps:7.2f} ms  {100 * spent / total:5.1f} %")
    # Adam reads weights, gradients and two moments and writes three of them; the products read the weights
    # twice (forward, input gradient) and write the weight gradient: about 11 passes over the weights a step
    traffic = 11 * 4 * weights
    print(f"\nweight traffic a step: about {traffic / 1e6:.0f} MB (11 passes over {4 * weights / 1e6:.1f} MB), "
          f"{traffic / (total / args.steps) / 1e9:.1f} GB/s over the step's time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
