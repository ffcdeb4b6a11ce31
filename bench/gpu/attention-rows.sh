#!/usr/bin/env bash
# bench/attention_rows.ts alone (about 40 s once the addon is built): batched decode attention at 8 / 32 rows ×
# 4k / 32k keys, own caches and one shared prefix, against the copy bandwidth of the same run.
mkdir -p "$OUT/attention-rows"
timeout 120 node --import tsx bench/attention_rows.ts --out "$OUT/attention-rows" > "$OUT/attention-rows/log.txt" 2>&1
echo "attention_rows rc=$?"
tail -12 "$OUT/attention-rows/log.txt"
