#!/usr/bin/env bash
# Download, on a machine with PyPI, the wheels bench/gpu_check.sh installs on the GPU
# machine (which cannot fetch anything): the versions this project pins that the GPU
# image lacks or has at another version. Into .whl/ (git-excluded); carry `.whl` with
# the run. Python 3.12 / x86-64 wheels, as on the GPU image.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
PY=${PYTHON:-python3}
# The image's huggingface_hub (1.33) and tokenizers (0.23.2) satisfy transformers 5.24;
# huggingface_hub 2.x would need httpx2, which the image lacks.
WANT=(transformers==5.24.0 grpcio==1.85.1 protobuf==7.36.2 grpcio-health-checking==1.85.1
      grpcio-reflection==1.85.1)
mkdir -p .whl
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${WANT[@]}"
ls -la .whl
du -sh .whl
