#!/usr/bin/env bash
# Fetch, on a machine with network, the wheels benchmarks/gpu.sh needs beyond a CUDA PyTorch stack, into .whl/
# (git-ignored), for a GPU machine without network: simplejpeg (the package's JPEG decoder, imported by every
# scorer module) and segment-anything (the reference generator, pure Python). gpu.sh installs whatever lies in
# .whl/ into a temporary folder first. Usage, from the repository root:
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]      (the GPU machine's Python; default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "simplejpeg>=1.8"
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl "segment-anything>=1.0"
ls -l .whl
