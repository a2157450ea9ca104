#!/usr/bin/env bash
# The GPU checks of the batched engine, as one script for a lent GPU machine (its python3 has torch, rich
# and pytest). Writes the full log to $OUT/device_check.log when OUT is set.
set -uo pipefail
log="${OUT:-/tmp}/device_check.log"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__)"
  echo "== exactness on cuda"
  DIGIT_WORKBENCH_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider \
    tests/test_batched.py -k "equal_independent or eval_mode"
  echo "== no host sync, time per step"
  python3 benchmarks/cuda_check.py
  echo "== Table II on cuda"
  python3 benchmarks/batched_vs_loop.py --device cuda --loop-rounds 1
} 2>&1 | tee "$log"
