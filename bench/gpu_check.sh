#!/usr/bin/env bash
# The device checks, in one run: GPU equality of the two scoring paths, then the
# benchmark with the mid-size model. Wheels for packages the GPU image lacks (or
# has too old) travel in .whl/ (see docs/performance.md).
set -eo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-bench-out/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, grpc; print('torch', torch.__version__, 'transformers', transformers.__version__, 'grpcio', grpc.__version__)" | tee -a "$OUT/gpu.txt"
python3 bench/gpu_equality.py 2>/dev/null | tee "$OUT/equality.txt"
python3 bench/run_bench.py --preset mid --device cuda --per-dim 8 --max-batch 16 --skip-full \
  --work /tmp/bench-gpu --out "$OUT/performance-gpu.md" 2>&1 | tee "$OUT/bench.log"
