#!/usr/bin/env bash
# The device checks in ONE command, every number written under $OUT:
#   gpu.txt            device, driver, package versions
#   equality.txt       packed and cache-copy scoring vs the per-option reference (float32 1e-4)
#   bench.log          the benchmark's progress and its report
#   bench.json         every number the benchmark measured (written after each measurement)
#   performance-gpu.md the report section for docs/performance.md
#   server-logs.txt    tail of the model server logs (for a failed (c))
#   generate.json/.md  Generate on the 7B layout, one question at a time vs batched (16):
#                      questions/s, new tokens/s, stages, decode memory bandwidth vs peak
#   ab.txt             packed vs cache copy, and images preprocessed on the device vs the CPU,
#                      each alternating batch by batch in one process
# Each stage runs under `timeout` (its own limit, cut to what is left of the total
# GPU_CHECK_TOTAL, 525 s); a failing stage does not stop the later ones. The whole run
# stays under 9 minutes (7B-shaped model built on the GPU).
# Packages the device image lacks or has too old travel as wheels in .whl/ (git-excluded).
# Verify on a CPU: GPU_CHECK_DEVICE=cpu GPU_CHECK_PRESET=tiny GPU_CHECK_MIX=24 \
#   GPU_CHECK_PYTHON=.venv/bin/python GPU_CHECK_BENCH_ARGS="--threads 1" \
#   GPU_CHECK_GENERATE_ARGS="--threads 1" bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${GPU_CHECK_PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PRESET=${GPU_CHECK_PRESET:-7b}
MIX=${GPU_CHECK_MIX:-200}
BENCH_TIMEOUT=${GPU_CHECK_BENCH_TIMEOUT:-240}
GENERATE_LIMIT=${GPU_CHECK_GENERATE_LIMIT:-32}
OUT=${OUT:-bench-out/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
TOTAL=${GPU_CHECK_TOTAL:-525}
START=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - START )) s)"; }
# limit WANTED: WANTED seconds, or what is left of TOTAL if less (at least 5)
limit() { local left=$(( TOTAL - ($(date +%s) - START) )); [ "$left" -lt "$1" ] && set -- "$left"; [ "$1" -lt 5 ] && set -- 5; echo "$1"; }

stage "wheels" | tee "$OUT/gpu.txt"
if ! $PY -c "import transformers, sys; sys.exit(transformers.__version__ != '5.24.0')" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    timeout "$(limit 60)" $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl 2>&1 | tail -3 | tee -a "$OUT/gpu.txt"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "no .whl/ here and transformers is not 5.24.0: the checks will likely fail" | tee -a "$OUT/gpu.txt"
  fi
fi

stage "versions" | tee -a "$OUT/gpu.txt"
timeout "$(limit 20)" nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$OUT/gpu.txt"
timeout "$(limit 60)" $PY -c "import torch, transformers, grpc; print('torch', torch.__version__, 'transformers', transformers.__version__, 'grpcio', grpc.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$OUT/gpu.txt"

stage "equality" | tee "$OUT/equality.txt"
timeout -k 10 "$(limit 100)" $PY bench/gpu_equality.py "$DEVICE" 2>&1 | grep -v -E "Loading weights|it/s\]" | tee -a "$OUT/equality.txt"
echo "equality exit status: ${PIPESTATUS[0]}" | tee -a "$OUT/equality.txt"

stage "bench" | tee "$OUT/bench.log"
timeout -k 15 "$(limit "$BENCH_TIMEOUT")" $PY bench/run_bench.py --preset "$PRESET" --device "$DEVICE" --mix "$MIX" \
  --max-batch 16 --skip-full --skip-replicas --skip-generate --work /tmp/bench-gpu \
  --out "$OUT/performance-gpu.md" --json "$OUT/bench.json" ${GPU_CHECK_BENCH_ARGS:-} 2>&1 | tee -a "$OUT/bench.log"
echo "bench exit status: ${PIPESTATUS[0]}" | tee -a "$OUT/bench.log"

for f in /tmp/bench-gpu/logs/server-*.log; do
  [ -f "$f" ] && { echo "== $f"; tail -n 60 "$f"; }
done > "$OUT/server-logs.txt" 2>&1
stage "generate: one at a time vs batched" | tee -a "$OUT/bench.log"
if [ -d "/tmp/bench-gpu/llava-$PRESET" ]; then
  D=/tmp/bench-gpu/data
  GEN=(bench/inproc_generate.py --model "/tmp/bench-gpu/llava-$PRESET" --annotations "$D/SEED-Bench_v2_level1_2_3.json"
       --media-root "cc3m=$D/cc3m" --media-root "SEED-Bench v2=$D/seed_bench_v2" --device "$DEVICE"
       --max-batch 16 --limit "$GENERATE_LIMIT" --profile 16 ${GPU_CHECK_GENERATE_ARGS:-})
  timeout -k 10 "$(limit 80)" $PY "${GEN[@]}" 2>>"$OUT/bench.log" | tail -1 > "$OUT/generate.json"
  echo "generate exit status: ${PIPESTATUS[0]}" | tee -a "$OUT/bench.log"
  $PY bench/generate_bench.py --inproc "$OUT/generate.json" --command "python ${GEN[*]}" \
    > "$OUT/generate.md" 2>>"$OUT/bench.log"
fi

stage "A/B in one process, alternating batches: packing, image preprocessing" | tee "$OUT/ab.txt"
if [ -d "/tmp/bench-gpu/llava-$PRESET" ]; then
  for toggle in packing image-device; do
    timeout -k 10 "$(limit 45)" $PY bench/ab.py --toggle $toggle --model "/tmp/bench-gpu/llava-$PRESET" \
      --data /tmp/bench-gpu/data --device "$DEVICE" --batch 16 --rounds 1 ${GPU_CHECK_AB_ARGS:-} 2>&1 \
      | grep -v -E "Loading weights|it/s\]" | tee -a "$OUT/ab.txt"
  done
fi
stage "done" | tee -a "$OUT/bench.log" "$OUT/ab.txt"
