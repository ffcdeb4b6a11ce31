#!/usr/bin/env bash
# GPU time of one ssdScanBackward call at the tiny Vamba / TimeViper training shapes and a Nemotron-H layer
# (bench/ssd_backward.ts, f32 then bf16; under a minute). Writes $OUT/ssd-backward/ssd-backward.md.
set -uo pipefail
R="$OUT/ssd-backward"
mkdir -p "$R"
command -v node >/dev/null || source .device/setup.sh
for dt in f32 bf16; do
  timeout 150 node --import tsx bench/ssd_backward.ts --dtype "$dt" 2>&1 | tee -a "$R/ssd-backward.md"
  echo "[ssd-backward] $dt rc=$?"
done
