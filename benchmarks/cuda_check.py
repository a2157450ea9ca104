"""CUDA checks for the batched engine, for a machine with an NVIDIA GPU.

    python benchmarks/cuda_check.py

For each Table II stack (20 replicas): trains steps with PyTorch's sync debug mode set to "error", so any
host synchronisation inside the step loop raises; then times steps (mean of 200, after warm-up).
The exactness tests run on the GPU with DIGIT_WORKBENCH_TEST_DEVICE=cuda pytest tests/test_batched.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.config import TABLE_II, find_preset  # noqa: E402
from workbench.engine import stack_groups  # noqa: E402
from workbench.engine.batched import StackedNet, step_scales, train_step  # noqa: E402
from workbench.engine.loop import init_model  # noqa: E402


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    device = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device)}")
    configs = [find_preset(name).config for name in TABLE_II]
    for group in stack_groups(configs):
        runs = [configs[i] for i in group]
        replicas = [(c, r) for c in runs for r in range(c.rounds)]
        R, B = len(replicas), runs[0].batch_size
        net = StackedNet(runs[0], [init_model(c, r) for c, r in replicas], device)
        optimizer = torch.optim.Adam(net.parameters(), lr=runs[0].lr, fused=True)
        generator = torch.Generator(device).manual_seed(0)
        w_bce = torch.tensor([c.alpha if c.aux_loss else 1.0 for c, _ in replicas], device=device)
        w_aux = torch.tensor([(1 - c.alpha) / 2 if c.aux_loss else 0.0 for c, _ in replicas], device=device)
        x = torch.rand(R, B, 2, 14, 14, device=device) * 255
        classes = torch.randint(0, 10, (R, B, 2), device=device)
        target = (classes[..., 0] <= classes[..., 1]).float()

        onehot = torch.nn.functional.one_hot(classes, 10).float()
        scales = step_scales(w_bce, w_aux, True, B)

        def step():
            return train_step(net, optimizer, x, target, onehot, *scales, generator)

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
        name = TABLE_II[group[0]].replace("-plain", "")
        print(f"{name:<16} R={R}: no host sync in 50 steps; outputs finite: {finite}; "
              f"{per_step * 1e3:.3f} ms per step (all {R} replicas)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
