#!/usr/bin/env bash
# Expected duration: about 3 minutes (addon build if missing ~70 s, the probe's CUDA parity test, the
# relevance cost benchmark). Run from the repository root with OUT set; results in "$OUT/webui/".
set -uo pipefail
mkdir -p "$OUT/webui"
[ -f native/cuda/build/longshot_cuda.node ] || timeout 300 npm run build:native > "$OUT/webui/build.log" 2>&1
timeout 300 node scripts/test-cuda.mjs test-cuda/attention-probe > "$OUT/webui/test-cuda-attention-probe.log" 2>&1
echo "attention-probe CUDA test exit $?"
timeout 300 node --import tsx bench/relevance_probe.ts --out "$OUT/webui" 2>&1 | tee "$OUT/webui/relevance_probe.md"
tail -5 "$OUT/webui/test-cuda-attention-probe.log"
