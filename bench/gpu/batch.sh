#!/usr/bin/env bash
# Batched decoding and serving on the GPU (issue 21, issue 17's decode): about 6 minutes (at most 11), from the
# repository root, results in $OUT/batch/:
#   test_cuda_batch.txt        test-cuda/batch.test.ts (decode.cu's kernels and batched model steps vs the CPU)
#   nemotron_h.json / .txt     Nemotron-H (Nano-9B-v2) vs Qwen2-7B decode at 32k: batch 1, 8, 16 (aggregate tok/s)
#   serve_load_{vamba,qwen2vl}.json / .md   the server under load: single stream at 256 frames (tok/s, GPU busy,
#                              launches/token), 8 and 32 concurrent questions, a 1024-frame video arriving while
#                              16 questions decode
set -u
OUT=${OUT:-gpu-out}/batch
mkdir -p "$OUT"
T0=$SECONDS
step() { echo "[$((SECONDS - T0)) s] $*"; }

step "build the addon (cached objects are reused)"
timeout 240 npm run build:native >"$OUT/build_native.txt" 2>&1 || { tail -20 "$OUT/build_native.txt"; exit 1; }

step "test-cuda/batch.test.ts"
timeout 150 node scripts/test-cuda.mjs batch >"$OUT/test_cuda_batch.txt" 2>&1
echo "rc=$?"; grep -E '^ℹ (tests|pass|fail)|✖|^not ok' "$OUT/test_cuda_batch.txt" | head -20

step "Nemotron-H vs Qwen2-7B: decode at 32k, 1 / 8 / 16 sequences"
timeout 180 node --import tsx bench/nemotron_h.ts --series nemotron,qwen2 --sizes 32768 --context 32768 \
  --decode 32 --batches 1,8,16 --budget 150 --out "$OUT/nemotron_h" >"$OUT/nemotron_h.txt" 2>&1
echo "rc=$?"; tail -22 "$OUT/nemotron_h.txt"

for arch in vamba qwen2vl; do
  step "server load test: $arch"
  timeout 150 node --import tsx bench/serve_load.ts --arch $arch --frames 256 --big-frames 1024 --decode 96 \
    --concurrency 8,32 --interfere 16 --budget 90 --out "$OUT/serve_load_$arch" >"$OUT/serve_load_$arch.log" 2>&1
  echo "rc=$?"; grep -v '^ ' "$OUT/serve_load_$arch.log" | grep -iE 'fail|error' | head -5
  cat "$OUT/serve_load_$arch.md" 2>/dev/null
done
step done
