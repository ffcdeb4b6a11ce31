#!/usr/bin/env bash
# Launches per decoded token (issues 17 and 21): about 7 minutes, from the repository root (alone with OUT set,
# or as `bash bench/gpu/job.sh decode-launches`), results in $OUT/decode-launches/:
#   build_native.txt           the addon build
#   test_cuda.txt              test-cuda/batch, decode and models: mambaStepRows and whole-model steps (Nemotron-H,
#                              Qwen2-VL, Vamba) on the GPU against the CPU backend, which now steps one Mamba-2
#                              sequence through its own mambaStepRows
#   decode_calls.txt / .json   backend calls per decoded token of the tiny models, counted on the GPU
#   nemotron_h.json / .txt     Nano-9B-v2 architecture (random bf16): prefill 8k, decode tok/s at 8k context
#   serve_load_{vamba,qwen2vl}.json / .log   single stream at 256 frames: tok/s, GPU busy, launches/token
# Run it on this branch and on main (same machine, same call) for the before/after table.
set -u
OUT=${OUT:-gpu-out}/decode-launches
mkdir -p "$OUT"
T0=$SECONDS
step() { echo "[$((SECONDS - T0)) s] $*"; }

step "build the addon"
timeout 240 node scripts/build-native.mjs >"$OUT/build_native.txt" 2>&1 || { tail -20 "$OUT/build_native.txt"; exit 1; }

step "test-cuda: batch, decode, models"
timeout 180 node scripts/test-cuda.mjs test-cuda/batch test-cuda/decode test-cuda/models >"$OUT/test_cuda.txt" 2>&1
echo "rc=$?"; grep -E '^(# |ℹ )(tests|pass|fail)|✖|not ok' "$OUT/test_cuda.txt" | head -12

step "backend calls per decoded token (tiny models, on the GPU)"
[ -f bench/decode_calls.ts ] && timeout 60 node --import tsx bench/decode_calls.ts --device cuda \
  --json "$OUT/decode_calls.json" >"$OUT/decode_calls.txt" 2>&1
grep 'calls per token' "$OUT/decode_calls.txt"

step "Nemotron-H decode at 8k context"
timeout 200 node --import tsx bench/nemotron_h.ts --series nemotron --sizes 8192 --context 8192 --decode 64 \
  --batches 1 --budget 150 --out "$OUT/nemotron_h" >"$OUT/nemotron_h.txt" 2>&1
echo "rc=$?"; grep -iE 'decode|tok/s' "$OUT/nemotron_h.txt" | tail -4

for arch in vamba qwen2vl; do
  step "single stream at 256 frames: $arch"
  timeout 130 node --import tsx bench/serve_load.ts --arch $arch --frames 256 --decode 96 --scenarios single \
    --budget 75 --out "$OUT/serve_load_$arch" >"$OUT/serve_load_$arch.log" 2>&1
  echo "rc=$?"
  node -e 'const s = require(process.argv[1]).single; console.log(`${s.decodeTokS} tok/s, GPU busy ${s.gpuBusy}, ${s.launchesPerToken} launches/token`)' \
    "$(cd "$OUT" && pwd)/serve_load_$arch.json" 2>&1 | tail -1
done
step done
