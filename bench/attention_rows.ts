/**
 * Batched decode attention (`ops.attentionRows`, native/cuda/decode.cu) against the memory bound: Qwen2-7B's
 * shape (28 query heads, 4 kv heads of 128) for 8 and 32 sequences at 4k and 32k keys, each sequence with its
 * own cache, and the same sequences continuing one shared prefix (questions about one video) with 64 keys of
 * their own. Prints ms, the K/V bytes that must be read (a shared prefix once), GB/s and the fraction of the
 * device copy bandwidth measured in the same run, and for own caches the single-sequence attention called once
 * per row (what the batched kernel must beat); writes attention_rows.json and .md.
 *   tsx bench/attention_rows.ts [--out dir] [--tiny]      (--tiny: small shapes on the CPU, to check the script)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import '../src/index.js';
import type { Backend } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const outDir = arg('--out') ?? process.env.OUT ?? '.bench-out';
const tiny = process.argv.includes('--tiny');
const be: Backend = await getBackend(tiny ? 'cpu' : 'cuda');
const [HQ, HKV, D] = [28, 4, 128];
const BYTES = 2; // bf16

/** Mean seconds per call after a warm-up, batches doubled until one lasts minTime (≥ 2 calls). */
async function time(fn: () => void, minTime = tiny ? 0.01 : 0.2): Promise<number> {
  fn();
  await be.synchronize();
  for (let batch = 2; ; batch *= 2) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) fn();
    await be.synchronize();
    const s = (performance.now() - t0) / 1000;
    if (s >= minTime) return s / batch;
  }
}

/** Random device data without a host round trip of its size: the outer product of two random vectors. */
function rand(shape: number[]): Tensor {
  const cols = shape[shape.length - 1];
  const rows = shape.reduce((a, b) => a * b, 1) / cols;
  const vec = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  using a = ops.tensor(be, vec(rows), [rows, 1], 'bf16');
  using b = ops.tensor(be, vec(cols), [1, cols], 'bf16');
  using t = ops.mul(a, b);
  return t.reshape(shape);
}

const copyElems = tiny ? 1 << 16 : 256 * 1024 * 1024; // 512 MiB of bf16
let copyGBps: number;
{
  using src = rand([copyElems]);
  using dst = ops.empty(be, [copyElems], 'bf16');
  copyGBps = (2 * copyElems * BYTES) / (await time(() => be.cast(dst, src))) / 1e9;
}

interface Row {
  case: string;
  rows: number;
  keys: number;
  ms: number;
  gb: number;
  gbps: number;
  ofCopy: number;
  boundMs: number;
  /** The same rows through the single-sequence attention, one call per row (own caches only). */
  perRowFlashMs: number | null;
}
const results: Row[] = [];
const kvOf = (len: number) => ({ k: rand([1, len, HKV, D]), v: rand([1, len, HKV, D]) });

for (const n of tiny ? [2] : [8, 32])
  for (const keys of tiny ? [300] : [4096, 32768])
    for (const shared of [false, true]) {
      const own = shared ? 64 : keys;
      const caches = Array.from({ length: n }, () => kvOf(own));
      const prefix = shared ? { ...kvOf(keys), length: keys } : null;
      using q = rand([n, HQ, D]);
      const kvs = caches.map((c) => ({ ...c, length: own, prefix }));
      const s = await time(() => ops.attentionRows(q, kvs).dispose());
      // Baseline for own caches: the lone decode path (split-K flash attention) once per row.
      const loopS = shared
        ? null
        : await time(() => {
            for (const [i, c] of caches.entries()) {
              using qi = q.narrow(i, i + 1).reshape([1, 1, HQ, D]);
              ops.attention(qi, c.k, c.v, { causal: false }).out.dispose();
            }
          });
      for (const t of [...caches.flatMap((c) => [c.k, c.v]), prefix?.k, prefix?.v]) t?.dispose();
      const bytes = 2 * HKV * D * BYTES * (n * own + (shared ? keys : 0));
      const gbps = bytes / s / 1e9;
      results.push({
        case: shared ? `${n} rows on one ${keys}-key prefix + 64 own` : `${n} rows × ${keys} own keys`,
        rows: n,
        keys,
        ms: s * 1e3,
        gb: bytes / 1e9,
        gbps,
        ofCopy: gbps / copyGBps,
        boundMs: (bytes / (copyGBps * 1e9)) * 1e3,
        perRowFlashMs: loopS === null ? null : loopS * 1e3,
      });
    }

const lines = [
  `attentionRows, ${HQ}/${HKV} heads of ${D}, bf16 (${be.name}); copy bandwidth ${copyGBps.toFixed(0)} GB/s`,
  '',
  '| case | ms | K/V GB | GB/s | of copy | bound ms | one flash call per row, ms |',
  '|---|---|---|---|---|---|---|',
  ...results.map(
    (r) =>
      `| ${r.case} | ${r.ms.toFixed(3)} | ${r.gb.toFixed(3)} | ${r.gbps.toFixed(0)} | ${(100 * r.ofCopy).toFixed(0)}% | ${r.boundMs.toFixed(3)} | ${r.perRowFlashMs?.toFixed(3) ?? '—'} |`,
  ),
];
console.log(lines.join('\n'));
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'attention_rows.json'), JSON.stringify({ copyGBps, results }, null, 2));
writeFileSync(join(outDir, 'attention_rows.md'), `${lines.join('\n')}\n`);
