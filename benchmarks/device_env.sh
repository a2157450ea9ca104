# Sourced on the GPU machine by the device scripts: the carried wheels (benchmarks/device_prepare.sh) installed
# beside its image's packages, and a cache folder of its own. Returns non-zero when the wheels are not there.
if [ -d .device/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/device-site \
    .device/whl/*.whl || return 1
  export PYTHONPATH="/tmp/device-site${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "device_env.sh: no .device/whl here (run benchmarks/device_prepare.sh, then carry .device)" >&2
  return 1
fi
export PYTHONUNBUFFERED=1
export DIGIT_WORKBENCH_CACHE="${DIGIT_WORKBENCH_CACHE:-/tmp/digit-workbench-cache}"
