#!/usr/bin/env bash
# Live video on the GPU (issue 22), about 3 minutes: the CUDA tests of live video (appended in pieces equals
# encoded at once, f32 and bf16; test-cuda/live.test.ts) and the live-video benchmark (bench/live_video.ts:
# Vamba-7B's architecture with random bf16 weights, a 1 fps 640×360 stream, time per appended second at
# 10 minutes, 1 hour and 3 hours in, time to first token mid-stream, memory growth per hour).
# Run from the repository root with the CUDA addon built (npm run build:native); writes $OUT/live/.
set -u
DIR="${OUT:-out}/live"
mkdir -p "$DIR"
T0=$SECONDS
step() { echo "[$((SECONDS - T0)) s] $*"; }
[ -e native/cuda/build/longshot_cuda.node ] || { step "building the CUDA addon"; npm run build:native >"$DIR/build_native.txt" 2>&1 || tail -20 "$DIR/build_native.txt"; }

step "CUDA tests: live video appended in pieces equals encoded at once"
timeout 120 npm run test:cuda -- test-cuda/live >"$DIR/test_cuda_live.txt" 2>&1
echo "rc=$?"
grep -E '^ℹ (tests|pass|fail)|✖|relative logit errors' "$DIR/test_cuda_live.txt" | head -30

step "benchmark: live video on Vamba-7B's architecture"
timeout 240 node --import tsx bench/live_video.ts --out "$DIR" >"$DIR/bench.txt" 2>&1
echo "rc=$?"
tail -8 "$DIR/bench.txt"
cat "$DIR/live_video_table.md" 2>/dev/null
step done
