#!/usr/bin/env bash
# GPU benchmark of the scoring path, one command, no network, no install:
#   bash benchmarks/gpu.sh [OUT.json]        (from the repository root; default OUT: gpu_bench.json)
# Needs torch, transformers, numba, numpy, Pillow, opencv, pyarrow; simplejpeg and segment-anything (optional)
# may come as wheels in .whl/ (benchmarks/gpu_wheels.sh fetches them): they are installed into a temporary folder.
# Everything runs within 8 minutes (420 s of measurements + model building, killed at 470 s); the JSON is
# rewritten after each measurement, so a failure or a kill still leaves what was measured.
set -u
cd "$(dirname "$0")/.."
OUT="${1:-gpu_bench.json}"
shift || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
if compgen -G ".whl/*.whl" >/dev/null; then
  site="$(mktemp -d)"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:$site" && echo "gpu.sh: installed $(ls .whl | tr '\n' ' ')into $site"
fi
timeout -k 10 470 "$PYTHON" benchmarks/gpu_bench.py --out "$OUT" "$@"
status=$?
echo "gpu.sh: exit $status; results in $OUT"
exit $status
