#!/usr/bin/env bash
# Admission by the server's memory ledger (issue 21; docs/server.md "Admission by memory"), from the repository
# root (alone with OUT set, or as `bash bench/gpu/job.sh admit`): about 6 minutes on an H100 once the addon is
# built (building it from nothing first adds about 90 s). The scenario that ran out of memory in session 7: the
# 7B architectures with random bf16 weights behind the server, 16 questions decoding about a 256-frame video,
# then a new 1024-frame (and 512-frame) video arrives. With the ledger the new video is admitted only if its
# encode's estimate fits beside the weights, the cached video, the decode caches and any memory the device holds
# beyond them (else it waits for the questions to end, or gets 413): it must be answered (status 200), never
# fail out of memory. Results in $OUT/admit/:
#   build_native.txt                             the addon build
#   test_cuda_batch.txt                          test-cuda/batch.test.ts and decode.test.ts (continuations
#                                                outgrowing a prefix's room keep it shared: nn/cache.ts)
#   serve_load_<arch>_<frames>.json / .md / .log  the new video's status and time to first token, the questions'
#                                                per-token latency before and during its encode, and the ledger
#                                                (/metrics, GiB) before it arrived and after it was answered
#   table.md                                     one row per run
set -u
OUT=${OUT:-gpu-out}/admit
mkdir -p "$OUT"
T0=$SECONDS
step() { echo "[$((SECONDS - T0)) s] $*"; }

step "build the addon (cached objects are reused)"
# node directly: the GPU kit has no npm (bench/gpu/job.sh).
timeout 240 node scripts/build-native.mjs >"$OUT/build_native.txt" 2>&1 || { tail -20 "$OUT/build_native.txt"; exit 1; }

step "test-cuda/batch.test.ts, decode.test.ts"
timeout 200 node scripts/test-cuda.mjs batch.test decode.test >"$OUT/test_cuda_batch.txt" 2>&1
echo "rc=$?"; grep -E '^ℹ (tests|pass|fail)|✖|^not ok' "$OUT/test_cuda_batch.txt" | head -20

for run in qwen2vl:1024 qwen2vl:512 vamba:1024; do
  arch=${run%:*}; big=${run#*:}
  step "$arch: a $big-frame video arrives while 16 questions decode"
  timeout 170 node --import tsx bench/serve_load.ts --arch "$arch" --frames 256 --big-frames "$big" --interfere 16 \
    --interfere-tokens 1500 --scenarios interfere --prefill-piece 1024 --budget 150 \
    --out "$OUT/serve_load_${arch}_$big" >"$OUT/serve_load_${arch}_$big.log" 2>&1
  echo "rc=$?"; grep -iE 'fail|error' "$OUT/serve_load_${arch}_$big.log" | grep -v '^ ' | head -5
done

node -e '
const fs = require("node:fs");
const dir = process.argv[1];
const parts = ["budget", "weights", "videos", "decode_reserved", "encode_reserved", "free", "unaccounted"];
const rows = [
  `| run | new video: status, answered | its TTFT s | per-token p50 before / during ms | tokens during its encode | ledger at arrival GiB (${parts.join(" / ")}) | device current / reserved GiB at arrival | after it was answered: free / unaccounted, device current / reserved |`,
  "|---|---|---|---|---|---|---|---|",
];
for (const run of ["qwen2vl_1024", "qwen2vl_512", "vamba_1024"]) {
  const f = `${dir}/serve_load_${run}.json`;
  if (!fs.existsSync(f)) { rows.push(`| ${run} | no result (see serve_load_${run}.log) | | | | | | |`); continue; }
  const r = JSON.parse(fs.readFileSync(f, "utf8"));
  const i = r.interference;
  if (!i || i.skipped) { rows.push(`| ${run} | skipped | | | | | | |`); continue; }
  const a = i.memoryAtArrival ?? {}, b = i.memoryAfter ?? {};
  rows.push(`| ${run} (${r.device}) | ${i.bigStatus}, ${i.bigAnswered}${i.bigError ? ` (${String(i.bigError).slice(0, 80)})` : ""} | ${i.bigTtftS} | ${i.perTokenMsBefore.p50} / ${i.perTokenMsDuring.p50} | ${i.tokensDuringEncode} | ${parts.map((p) => a[`memory_${p}`]).join(" / ")} | ${a.device_current} / ${a.device_reserved} | ${b.memory_free} / ${b.memory_unaccounted}, ${b.device_current} / ${b.device_reserved} |`);
}
const table = `${rows.join("\n")}\n`;
fs.writeFileSync(`${dir}/table.md`, table);
process.stdout.write(table);
' "$OUT"
step done
