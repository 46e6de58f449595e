#!/bin/bash
# The GPU figures on a machine without TensorFlow (the device tool's H200 image):
# installs the carried wheels (keras, keras-tuner and the few of their needs the
# image lacks), then runs gpu_figures.py with JAX, then with torch.
#
#   bash benchmarks/gpu/run_device.sh DIR     # DIR holds whl/, src/ and benchmarks/
set -u
DIR=${1:?the folder with whl/, src/ and benchmarks/}
OUT=${OUT:-/tmp/gpu-figures}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$DIR"/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$DIR/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/nvidia-smi.txt"
for backend in jax torch; do
  limit=330; [ $backend = torch ] && limit=180
  KERAS_BACKEND=$backend timeout $limit python3 "$DIR/benchmarks/gpu/gpu_figures.py" --out "$OUT/$backend.json" \
    >"$OUT/$backend.log" 2>&1
  echo "$backend: exit $?"; grep -v "^\s*$" "$OUT/$backend.log" | tail -4
done
