#!/usr/bin/env bash
# GPU benchmark of the scoring path, one command, no network, no install:
#   bash benchmarks/gpu.sh [OUT.json]        (from the repository root; default OUT: gpu_bench.json)
# Needs torch, transformers, numba, numpy, Pillow, opencv, pyarrow (segment-anything optional).
# Everything runs within 8 minutes (420 s of measurements + model building, killed at 470 s); the JSON is
# rewritten after each measurement, so a failure or a kill still leaves what was measured.
set -u
cd "$(dirname "$0")/.."
OUT="${1:-gpu_bench.json}"
shift || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTHON="${PYTHON:-python}"
timeout -k 10 470 "$PYTHON" benchmarks/gpu_bench.py --out "$OUT" "$@"
status=$?
echo "gpu.sh: exit $status; results in $OUT"
exit $status
