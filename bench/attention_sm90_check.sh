#!/bin/bash
# One GPU job that verifies and times the Hopper attention kernel (native/cuda/attention_sm90.cu) on an
# H100/H200: builds kernels_test for sm_90a, runs the float64 checks with the wgmma kernel in each pipelining
# variant and with the mma.sync kernel, times the attention model shapes for each, then times PyTorch SDPA in
# the same job (bench/cuda_kernels_peer.py). Results go to $OUT (log.txt, ours.json, peer.json, ptxas.txt).
#   OUT=/tmp/out bash bench/attention_sm90_check.sh
set -u
OUT=${OUT:-/tmp/attention_sm90_check}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
B=$(mktemp -d)
NV="nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I native/cuda"
{
  date -u
  nvidia-smi --query-gpu=name --format=csv,noheader
  $NV -Xptxas -v -c native/cuda/attention_sm90.cu -o "$B/sm90.o" 2>"$OUT/ptxas.txt" &
  for f in attention ssd conv1d test/kernels_test; do $NV -c "native/cuda/$f.cu" -o "$B/$(basename $f).o" & done
  wait
  $NV "$B"/*.o -o "$B/kt" || { echo "BUILD FAILED"; exit 1; }
  grep -E "spill|Potential" "$OUT/ptxas.txt" | sort | uniq -c
  echo "HGMMA instructions in SASS: $(cuobjdump --dump-sass "$B/sm90.o" | grep -c HGMMA)"
  for v in 0 1 2; do
    echo "== checks, wgmma kernel variant $v"
    LONGSHOT_ATTN_SM90=1 LONGSHOT_ATTN_SM90_VARIANT=$v timeout 120 "$B/kt" test | grep -E "^attention|attention |FAIL|PASS"
  done
  echo "== checks, mma.sync kernel"
  LONGSHOT_ATTN_SM90=0 timeout 120 "$B/kt" test | grep -E "attention|FAIL|PASS"
  cd "$B"
  for v in 1 2; do
    echo "== timings, wgmma variant $v"
    for f in vision causal; do LONGSHOT_ATTN_SM90=1 LONGSHOT_ATTN_SM90_VARIANT=$v timeout 120 ./kt bench - "$f"; done
  done
  echo "== timings, mma.sync kernel"
  for f in vision causal; do LONGSHOT_ATTN_SM90=0 timeout 120 ./kt bench - "$f"; done
  echo "== timings, wgmma variant 0 (ours.json) and the torch peers"
  for f in vision causal decode cross; do LONGSHOT_ATTN_SM90=1 timeout 120 ./kt bench "$f.json" "$f"; done
  python3 -c "import json; json.dump(sum((json.load(open(f + '.json')) for f in ['vision', 'causal', 'decode', 'cross']), []), open('$OUT/ours.json', 'w'))"
  cd - >/dev/null
  PYTHONUNBUFFERED=1 timeout 200 python3 bench/cuda_kernels_peer.py --ours "$OUT/ours.json" --out "$OUT/peer.json"
  date -u
} >"$OUT/log.txt" 2>&1
rm -rf "$B"
tail -c 11000 "$OUT/log.txt"
