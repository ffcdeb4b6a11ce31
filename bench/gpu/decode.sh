#!/usr/bin/env bash
# The decode step on the GPU (issue 21): about 6 minutes, from the repository root (alone with OUT set, or as
# `bash bench/gpu/job.sh decode`), results in $OUT/decode/:
#   build_native.txt             the addon build (cached objects are reused)
#   test_cuda_decode.txt         test-cuda/decode.test.ts, batch.test.ts, models.test.ts (attention_rows
#                                planning, fused one-token step, batched kernels and model steps vs the CPU
#                                backend; Qwen2-VL and Vamba fixtures vs PyTorch with the fused projections)
#   attention_rows.json / .md    batched decode attention at 8 / 32 rows × 4k / 32k keys against copy bandwidth
#                                (and, for own caches, one single-sequence attention call per row)
#   serve_load_{vamba,qwen2vl}.json / .md   single stream at 256 frames (tok/s untraced, then GPU busy and
#                                launches/token traced), 8 and 32 concurrent questions
#   summary.md                   the table of all of it against session 6 and the issue's targets
# DECODE_PARTS picks and orders the parts (default "tests rows load"; e.g. "load tests" when device time is short:
# the load test first, each part's files written as it ends).
set -u
PARTS=${DECODE_PARTS:-tests rows load}
OUT=${OUT:-gpu-out}/decode
mkdir -p "$OUT"
T0=$SECONDS
step() { echo "[$((SECONDS - T0)) s] $*"; }

step "build the addon"
# node directly: the GPU kit has no npm (bench/gpu/job.sh).
timeout 240 node scripts/build-native.mjs >"$OUT/build_native.txt" 2>&1 || { tail -20 "$OUT/build_native.txt"; exit 1; }

tests() {
  step "test-cuda: decode, batch, models"
  timeout 180 node scripts/test-cuda.mjs test-cuda/decode test-cuda/batch test-cuda/models \
    >"$OUT/test_cuda_decode.txt" 2>&1
  echo "rc=$?"; grep -E '^(# |ℹ )(tests|pass|fail)|✖|not ok|NOT RUN' "$OUT/test_cuda_decode.txt" | head -12
}
rows() {
  step "attentionRows micro-benchmark"
  timeout 90 node --import tsx bench/attention_rows.ts --out "$OUT" >"$OUT/attention_rows.txt" 2>&1
  echo "rc=$?"; tail -8 "$OUT/attention_rows.txt"
}
load() {
  for arch in vamba qwen2vl; do
    step "server load test: $arch"
    timeout 130 node --import tsx bench/serve_load.ts --arch $arch --frames 256 --decode 96 --concurrency 8,32 \
      --interfere 0 --budget 75 --out "$OUT/serve_load_$arch" >"$OUT/serve_load_$arch.log" 2>&1
    echo "rc=$?"; grep -v '^ ' "$OUT/serve_load_$arch.log" | grep -iE 'fail|error' | head -5
  done
}
summary() {
node - "$OUT" >"$OUT/summary.md" <<'EOF'
const { existsSync, readFileSync } = require('node:fs');
const dir = process.argv[2];
const read = (f) => (existsSync(`${dir}/${f}`) ? JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')) : null);
// Session 6 on an H100 (docs/benchmarks/serving.md): single-stream tok/s at 256 frames.
const before = { vamba: 80.6, qwen2vl: 97.2 };
const out = ['| | Vamba-7B | Qwen2-VL-7B | target |', '|---|---|---|---|'];
const s = { vamba: read('serve_load_vamba.json'), qwen2vl: read('serve_load_qwen2vl.json') };
const cell = (a, f) => (s[a] ? f(s[a]) : 'no result');
const conc = (r, n) => r.concurrent?.find((c) => c.concurrency === n);
const row = (name, f, target) => out.push(`| ${name} | ${cell('vamba', f)} | ${cell('qwen2vl', f)} | ${target} |`);
row('device', (r) => r.device, '');
row('single stream tok/s (× session 6)', (r) => `${r.single.decodeTokS} (${(r.single.decodeTokS / before[r.arch]).toFixed(2)}×)`, '≥ 2×');
row('traced: tok/s, GPU busy, launches/token', (r) => `${r.single.tracedTokS}, ${r.single.gpuBusy}, ${r.single.launchesPerToken}`, 'busy ≥ 0.80');
for (const n of [8, 32])
  row(`${n} concurrent: aggregate tok/s while all decode (× single); after the last first token`, (r) => {
    const c = conc(r, n);
    return !c ? 'not run' : c.skipped ? `skipped (${c.skipped})` : `${c.fullBatchTokS} (${c.fullBatchSpeedup}×); ${c.decodeTokS} (${c.speedup}×)`;
  }, n === 8 ? '≥ 5×' : '≥ 15×');
for (const n of [8, 32])
  row(`${n} concurrent: TTFT p50/p99, per-token p50/p99 ms`, (r) => {
    const c = conc(r, n);
    return !c || c.skipped ? '' : `${c.ttftMs.p50} / ${c.ttftMs.p99}; ${c.perTokenMs.p50} / ${c.perTokenMs.p99}`;
  }, '');
const a = read('attention_rows.json');
if (a) {
  out.push('', `attentionRows (Qwen2-7B heads, bf16), copy bandwidth ${a.copyGBps.toFixed(0)} GB/s:`, '');
  out.push('| case | ms | GB/s | of copy | bound ms | one flash call per row, ms |', '|---|---|---|---|---|---|');
  for (const r of a.results)
    out.push(`| ${r.case} | ${r.ms.toFixed(3)} | ${r.gbps.toFixed(0)} | ${(100 * r.ofCopy).toFixed(0)}% | ${r.boundMs.toFixed(3)} | ${r.perRowFlashMs?.toFixed(3) ?? '—'} |`);
}
console.log(out.join('\n'));
EOF
}
for part in $PARTS; do
  case $part in
    tests | rows | load) "$part"; summary ;;  # after each part: a call cut short still has its table
    *) echo "DECODE_PARTS: unknown part $part (tests, rows, load)"; exit 2 ;;
  esac
done

cat "$OUT/summary.md"
step done
