#!/usr/bin/env bash
# Fair scheduling between a long prefill and running decodes (issue 21, chunked prefill), from the repository
# root (alone with OUT set, or as `bash bench/gpu/job.sh sched`): about 3 minutes on an H100 once the addon is
# built (building it from nothing first adds about 90 s). The 7B
# architectures of Vamba and Qwen2-VL with random bf16 weights behind the server on 127.0.0.1: 16 questions
# decode about a 256-frame video, then a new 1024-frame video arrives and is encoded in pieces of
# SCHED_PIECE video tokens (default 1024; 0: at once; several, e.g. "1024 512", run one after another), one
# batched decode step between two pieces.
# Prints a table; results in $OUT/sched/:
#   build_native.txt                                the addon build
#   serve_load_{vamba,qwen2vl}_<piece>.json / .md / .log   per-token latency p50/p99 before and while the new video is
#                                                   encoded (target: during ≤ 2× before), tokens decoded during
#                                                   the encode, /metrics' encode progress scraped meanwhile
#   table.md                                        both architectures
set -u
OUT=${OUT:-gpu-out}/sched
mkdir -p "$OUT"
PIECE=${SCHED_PIECE:-1024}
T0=$SECONDS
step() { echo "[$((SECONDS - T0)) s] $*"; }

step "build the addon (cached objects are reused)"
# node directly: the GPU kit has no npm (bench/gpu/job.sh).
timeout 240 node scripts/build-native.mjs >"$OUT/build_native.txt" 2>&1 || { tail -20 "$OUT/build_native.txt"; exit 1; }

runs=()
for piece in $PIECE; do
  for arch in vamba qwen2vl; do
    name=${arch}_$piece
    runs+=("$name")
    step "$arch: a 1024-frame video arrives while 16 questions decode (pieces of $piece tokens)"
    timeout 120 node --import tsx bench/serve_load.ts --arch $arch --frames 256 --big-frames 1024 --interfere 16 \
      --scenarios interfere --prefill-piece "$piece" --budget 100 --out "$OUT/serve_load_$name" \
      >"$OUT/serve_load_$name.log" 2>&1
    echo "rc=$?"; grep -iE 'fail|error' "$OUT/serve_load_$name.log" | grep -v '^ ' | head -5
  done
done

node -e '
const fs = require("node:fs");
const rows = ["| arch, piece tokens | per-token before p50 / p99 ms | during the encode p50 / p99 ms | ratio p50 / p99 | tokens during the encode | encode s | target (p50 ≤ ×2) |", "|---|---|---|---|---|---|---|"];
for (const run of process.argv.slice(2)) {
  const f = `${process.argv[1]}/serve_load_${run}.json`;
  if (!fs.existsSync(f)) { rows.push(`| ${run} | no result (see serve_load_${run}.log) | | | | | |`); continue; }
  const r = JSON.parse(fs.readFileSync(f, "utf8"));
  const i = r.interference;
  if (!i || i.skipped) { rows.push(`| ${run} | skipped | | | | | |`); continue; }
  rows.push(`| ${run} (${r.device}) | ${i.perTokenMsBefore.p50} / ${i.perTokenMsBefore.p99} | ${i.perTokenMsDuring.p50} / ${i.perTokenMsDuring.p99} | ×${i.ratioP50} / ×${i.ratioP99} | ${i.tokensDuringEncode} | ${i.encodeS} | ${i.withinTarget ? "met" : "missed"} |`);
}
const table = `${rows.join("\n")}\n`;
fs.writeFileSync(`${process.argv[1]}/table.md`, table);
process.stdout.write(table);
' "$OUT" "${runs[@]}"
step done
