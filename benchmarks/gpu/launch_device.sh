#!/bin/bash
# `bayesft-keras launch` on a machine with several GPUs and no TensorFlow (JAX backend):
# the same small VGG11 search with 1 worker on GPU 0, then 2 workers on GPUs 0 and 1.
#
#   bash benchmarks/gpu/launch_device.sh DIR     # DIR holds whl/, src/, benchmarks/
set -u
DIR=$(cd "${1:?the folder with whl/, src/ and benchmarks/}" && pwd)
OUT=${OUT:-/tmp/launch-figures}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$DIR"/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$DIR/src PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
nvidia-smi --query-gpu=index,name,memory.total --format=csv
cd /tmp
for gpus in 0 0,1; do
  workers=$(echo $gpus | tr ',' '\n' | wc -l)
  start=$(date +%s)
  timeout 270 python3 -m bayesft_keras_cli launch --workers $workers --gpus $gpus \
    --preset "$DIR/benchmarks/gpu/vgg11-synthetic.toml" --dir /tmp/run$workers > "$OUT/launch$workers.txt" 2>&1
  code=$?
  end=$(date +%s)
  echo "workers=$workers gpus=$gpus exit=$code wall_s=$((end - start))" | tee -a "$OUT/summary.txt"
  grep -h "\] bayesft trial .* completed\|started (pid" /tmp/run$workers/logs/tuner*.log | cut -c1-120 | tee -a "$OUT/summary.txt"
  tail -3 "$OUT/launch$workers.txt"
  tar czf "$OUT/logs$workers.tgz" -C /tmp/run$workers logs summary.md trials.csv 2>/dev/null
done
