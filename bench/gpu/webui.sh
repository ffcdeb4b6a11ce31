#!/usr/bin/env bash
# Expected duration: about 3 minutes (addon build ~70 s when native/cuda changed, the probe's CUDA parity test
# ~30 s, the relevance cost benchmark ~30 s). Run from the repository root with OUT set; results in
# "$OUT/webui/". The build always runs: its object cache makes it instant when nothing changed, and an addon
# built before native/cuda/attention_mass.cu would make the probe fall back to the slow path.
set -uo pipefail
mkdir -p "$OUT/webui"
timeout 300 npm run build:native > "$OUT/webui/build.log" 2>&1
echo "build:native exit $?"
timeout 300 node scripts/test-cuda.mjs test-cuda/attention-probe > "$OUT/webui/test-cuda-attention-probe.log" 2>&1
echo "attention-probe CUDA test exit $?"
grep -E '^# (tests|pass|fail)|NOT RUN' "$OUT/webui/test-cuda-attention-probe.log"
timeout 300 node --import tsx bench/relevance_probe.ts --out "$OUT/webui" 2>&1 | tee "$OUT/webui/relevance_probe.md"
