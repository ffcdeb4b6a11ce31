#!/usr/bin/env bash
# Every GPU check and benchmark of the project in one job (about 7 minutes on an H200, plus up to 12 for the Nemotron-H and eval steps): builds the addon and
# the standalone kernel harness, runs the kernels' float64 checks and `npm run test:cuda`, times the kernels and
# the runtime ops beside their PyTorch peers, the long-video series of Vamba, Qwen2-VL and transformers, the
# Nemotron-H benchmark and the eval smoke run (the last needs ffmpeg: carry node_modules with @ffmpeg-installer).
# Results go to $OUT (default ./gpu-check): logs, JSON, and the long-video table and figure.
#
#   OUT=/tmp/out bash bench/gpu_check.sh [frames for the long-video series, default 256,1024,2048,3600]
#   OUT=/tmp/out bash bench/gpu_check.sh --check-only   # the checks alone (about 3 minutes), no timings
set -u
OUT=${OUT:-gpu-check}
CHECK_ONLY=0
[ "${1:-}" = --check-only ] && { CHECK_ONLY=1; shift; }
FRAMES=${1:-256,1024,2048,3600}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
T0=$SECONDS
step() { echo "[$((SECONDS - T0)) s] $*"; }
B=$(mktemp -d)
NV="nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I native/cuda"

step "build: the addon, and kernels_test for sm_90a"
[ $CHECK_ONLY = 1 ] || (PYTHONUNBUFFERED=1 timeout 100 python3 bench/cuda_ops_peer.py --out "$OUT/cuda_ops_peer.json" >"$OUT/cuda_ops_peer.txt" 2>&1) &
for f in attention attention_sm90 ssd conv1d norm elementwise test/kernels_test; do
  $NV -c "native/cuda/$f.cu" -o "$B/$(basename "$f").o" &
done
npm run build:native >"$OUT/build_native.txt" 2>&1 || { tail -20 "$OUT/build_native.txt"; exit 1; }
wait
$NV "$B"/*.o -o "$B/kt" || { echo "kernels_test: build failed"; exit 1; }

step "kernels_test test (float64 references)"
timeout 150 "$B/kt" test >"$OUT/kernels_test.txt" 2>&1
echo "rc=$? $(grep -c '^ok' "$OUT/kernels_test.txt") ok, $(grep -c '^FAIL' "$OUT/kernels_test.txt") FAIL"
grep -E '^FAIL|exception' "$OUT/kernels_test.txt" | head -20

step "npm run test:cuda"
timeout 200 npm run test:cuda >"$OUT/test_cuda.txt" 2>&1
echo "rc=$?"
grep -E '^ℹ (tests|pass|fail)|^not ok|✖' "$OUT/test_cuda.txt" | head -20
[ $CHECK_ONLY = 1 ] && { rm -rf "$B"; step done; exit 0; }

step "kernel timings and their PyTorch peers"
for f in vision causal decode cross ssd conv1d; do timeout 90 "$B/kt" bench "$B/$f.json" "$f" >/dev/null 2>&1 || echo "bench $f failed"; done
python3 -c "import json, sys, os; json.dump(sum((json.load(open(f)) for f in sys.argv[2:] if os.path.exists(f)), []), open(sys.argv[1], 'w'))" \
  "$OUT/kernels_ours.json" "$B"/{vision,causal,decode,cross,ssd,conv1d}.json
PYTHONUNBUFFERED=1 timeout 200 python3 bench/cuda_kernels_peer.py --ours "$OUT/kernels_ours.json" --out "$OUT/cuda_kernels.json" 2>&1 | tail -20

step "runtime ops (GEMMs, norms, elementwise) beside PyTorch"
timeout 120 npx tsx bench/cuda_ops.ts --peer "$OUT/cuda_ops_peer.json" --out "$OUT" 2>&1 | grep '^|'

step "long-video series: $FRAMES frames"
timeout 420 node --import tsx bench/long_video.ts --series vamba,qwen2vl,peer --frames "$FRAMES" --decode 64 \
  --budget 60 --out "$OUT/long_video" >"$OUT/long_video.txt" 2>&1
tail -25 "$OUT/long_video.txt"

step "where Vamba's time goes at 1024 frames (per-kernel GPU time, stream idle time)"
timeout 120 node --import tsx bench/long_video.ts --series vamba --frames 1024 --decode 8 --budget 100 --profile \
  --out "$OUT/profile" 2>&1 | grep -v "^npm warn" | tail -45
step "Nemotron-H (Nano-9B-v2) prefill 8k/32k/128k and decode at 32k, beside Qwen2-7B and transformers"
timeout 400 node --import tsx bench/nemotron_h.ts --budget 300 --out "$OUT/nemotron_h" >"$OUT/nemotron_h.txt" 2>&1
tail -25 "$OUT/nemotron_h.txt"

step "eval smoke: the shipped tiny models on needle and VNBench-format data, in process and through serve"
timeout 300 bash scripts/eval-smoke.sh cuda >"$OUT/eval_smoke.txt" 2>&1; echo "rc=$?"; tail -15 "$OUT/eval_smoke.txt"
rm -rf "$B"
step done
