#!/usr/bin/env bash
# Issue 21's end-to-end targets on a GPU: `sweep table3-fcn` and `sweep table4-cnn --workers 2` with the old worker
# (one trial per engine call) and the new one (batches; then with the median pruner), side by side, each from its
# own tree in a fresh study, the final measurements included (sweep_speed.py). Needs .device/ from
# benchmarks/device_prepare.sh, carried: run with carry [".device"] and a timeout_s over LIMIT (default 540 s).
# Each table is written to $OUT after every variant, so a run stopped at the limit keeps what it finished.
set -uo pipefail
out="${OUT:-/tmp}"
. benchmarks/device_env.sh || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, optuna; print('torch', torch.__version__, 'optuna', optuna.__version__)" || exit 1
deadline=$(( $(date +%s) + ${LIMIT:-540} ))
for spec in table3-fcn table4-cnn; do
  left=$(( deadline - $(date +%s) ))
  [ "$left" -gt 30 ] || { echo "== $spec: no time left"; break; }
  echo "== $spec (old worker $(cat .device/old-tree/COMMIT), new worker, new worker with the median pruner; ${left} s left)"
  timeout "$left" python3 benchmarks/sweep_speed.py "$spec" --old .device/old-tree --pruner median \
    --out "$out/sweep_speed_${spec}_gpu.md" 2>&1 | tail -20
done
