#!/usr/bin/env bash
# The web UI's GPU checks, about 3 minutes: the CUDA addon build (~70 s when native/cuda changed; its object
# cache makes it instant otherwise, and an addon built before native/cuda/attention_mass.cu would make the
# probe fall back to the slow path, so it always runs), the relevance probe's CUDA parity test against the CPU
# backend (test-cuda/attention-probe.test.ts, ~30 s) and the probe's cost benchmark (bench/relevance_probe.ts,
# ~30 s). Run from the repository root (alone with OUT set, or as `bash bench/gpu/job.sh webui`); results in
# "$OUT/webui/".
set -uo pipefail
DIR="${OUT:-.bench-out}/webui"
mkdir -p "$DIR"
timeout 300 node scripts/build-native.mjs > "$DIR/build.log" 2>&1
echo "build-native exit $? ($(tail -1 "$DIR/build.log"))"
timeout 300 node scripts/test-cuda.mjs test-cuda/attention-probe > "$DIR/test-cuda-attention-probe.log" 2>&1
echo "attention-probe CUDA test exit $?"
grep -E '^(# |ℹ )(tests|pass|fail)|✖|not ok|NOT RUN' "$DIR/test-cuda-attention-probe.log" | head -20
timeout 300 node --import tsx bench/relevance_probe.ts --out "$DIR" 2>&1 | tee "$DIR/relevance_probe.md"
