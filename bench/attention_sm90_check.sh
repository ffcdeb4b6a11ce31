#!/bin/bash
# One GPU job that verifies and times the Hopper attention kernel (native/cuda/attention_sm90.cu) on an
# H100/H200: builds kernels_test for sm_90a, runs the float64 checks with the wgmma kernel in each pipelining
# variant (LONGSHOT_ATTN_SM90_VARIANT) and with the mma.sync kernel, times the attention model shapes for each,
# then times PyTorch SDPA in the same job (bench/cuda_kernels_peer.py). Results go to $OUT (log.txt,
# ours.json, peer.json, ptxas.txt). A hang (a pipeline deadlock) stops the job after 60 s.
#   OUT=/tmp/out bash bench/attention_sm90_check.sh
# With BINDING=1 (and Node on PATH, e.g. after `source .device/setup.sh`) it then builds the addon and runs
# test-cuda/attention.test.ts with the wgmma kernel on, through the binding against the CPU backend.
set -u
OUT=${OUT:-/tmp/attention_sm90_check}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
B=$(mktemp -d)
NV="nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I native/cuda"
# kt MODE VARIANT ARGS...: kernels_test with the wgmma kernel (VARIANT 0-2) or the mma.sync one (VARIANT off)
kt() {
  local mode=$1 v=$2
  shift 2
  if [ "$v" = off ]; then LONGSHOT_ATTN_SM90=0 timeout 60 "$B/kt" "$mode" "$@"
  else LONGSHOT_ATTN_SM90=1 LONGSHOT_ATTN_SM90_VARIANT=$v timeout 60 "$B/kt" "$mode" "$@"; fi
  local rc=$?
  if [ $rc = 124 ]; then echo "HANG: kernels_test $mode (variant $v) timed out" >&2; exit 1; fi
  return $rc
}
main() {
  date -u
  nvidia-smi --query-gpu=name --format=csv,noheader
  $NV -Xptxas -v -c native/cuda/attention_sm90.cu -o "$B/sm90.o" 2>"$OUT/ptxas.txt" &
  for f in attention ssd conv1d norm test/kernels_test; do $NV -c "native/cuda/$f.cu" -o "$B/$(basename $f).o" & done
  wait
  $NV "$B"/*.o -o "$B/kt" || { echo "BUILD FAILED"; exit 1; }
  grep -E "spill|Potential" "$OUT/ptxas.txt" | sort | uniq -c
  echo "HGMMA instructions in SASS: $(cuobjdump --dump-sass "$B/sm90.o" | grep -c HGMMA)"
  for v in 0 1 2 off; do
    echo "== checks, variant $v"
    kt test $v >"$B/test.txt"
    grep -E "attention|FAIL|PASS" "$B/test.txt"
  done
  cd "$B"
  for v in 1 2 off; do
    echo "== timings, variant $v"
    for f in vision causal; do kt bench $v - "$f"; done
  done
  echo "== timings, variant 0 (ours.json) and the torch peers"
  for f in vision causal decode cross; do kt bench 0 "$f.json" "$f"; done
  python3 -c "import json; json.dump(sum((json.load(open(f + '.json')) for f in ['vision', 'causal', 'decode', 'cross']), []), open('$OUT/ours.json', 'w'))"
  cd - >/dev/null
  PYTHONUNBUFFERED=1 timeout 200 python3 bench/cuda_kernels_peer.py --ours "$OUT/ours.json" --out "$OUT/peer.json"
  if [ "${BINDING:-0}" = 1 ]; then
    echo "== binding parity (npm run test:cuda, attention) with the wgmma kernel"
    npm run build:native && LONGSHOT_ATTN_SM90=1 timeout 200 npm run test:cuda -- test-cuda/attention.test.ts
  fi
  date -u
}
(main) >"$OUT/log.txt" 2>&1  # a subshell, so that a hang's exit still leaves the clean-up below
rm -rf "$B"
tail -c 11000 "$OUT/log.txt"
