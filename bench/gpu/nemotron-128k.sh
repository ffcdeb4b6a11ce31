#!/usr/bin/env bash
# Issue 17's missing row: transformers' NemotronH prefill at 128k tokens, beside ours in the same run (8k and
# 128k; the 32k decode comparison is docs/benchmarks/nemotron_h.md's session-5 table). About 4 minutes.
mkdir -p "$OUT/nemotron-128k"
timeout 480 node --import tsx bench/nemotron_h.ts --series nemotron,peer --sizes 8192,131072 --context 8192 \
  --decode 16 --batches 1 --budget "${NEMOTRON_BUDGET:-440}" --out "$OUT/nemotron-128k/nemotron_h_128k" \
  > "$OUT/nemotron-128k/log.txt" 2>&1
echo "nemotron_h rc=$?"
tail -20 "$OUT/nemotron-128k/log.txt"
