/**
 * What `relevance: true` costs per answer token on CUDA at Vamba-7B's cross-attention shape (28 query heads,
 * 4 kv heads, head dim 128, bf16): one decode query's attention (the normal path) against the probe's
 * recomputed softmax row summed over heads (nn/attention-probe.ts: ops.attentionMass, its own kernel,
 * native/cuda/attention_mass.cu) and against the attention op's `returnWeights` that the probe took before
 * (the generic kernel, one warp per head), for video token counts up to an hour's.
 *   node --import tsx bench/relevance_probe.ts [--out dir]     (writes relevance_probe.json)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import '../src/index.js';
import { AttentionProbe } from '../src/nn/attention-probe.js';
import { getBackend } from '../src/runtime/device.js';
import * as ops from '../src/runtime/ops.js';

const i = process.argv.indexOf('--out');
const outDir = i >= 0 ? process.argv[i + 1] : (process.env.OUT ?? '.bench-out');
const gpu = await getBackend('cuda');
if (!gpu.attentionMass)
  throw new Error('the CUDA addon has no attentionMass kernel: rebuild it with "npm run build:native"');

/** Mean seconds per call after a warm-up, over batches that last at least 0.2 s. */
async function time(fn: () => void): Promise<number> {
  fn();
  await gpu.synchronize();
  for (let batch = 4; ; batch *= 2) {
    const t0 = performance.now();
    for (let b = 0; b < batch; b++) fn();
    await gpu.synchronize();
    const s = (performance.now() - t0) / 1000;
    if (s >= 0.2) return s / batch;
  }
}

const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
interface Row {
  keys: number;
  attention_ms: number;
  weights_ms: number;
  probe_ms: number;
  per_token_28_layers_ms: number;
}
const rows: Row[] = [];
for (const keys of [4096, 32768, 131072, 262144]) {
  const q = ops.tensor(gpu, random(28 * 128), [1, 1, 28, 128], 'bf16');
  const k = ops.tensor(gpu, random(keys * 4 * 128), [1, keys, 4, 128], 'bf16');
  const v = ops.tensor(gpu, random(keys * 4 * 128), [1, keys, 4, 128], 'bf16');
  const probe = new AttentionProbe(0, keys);
  const attention = await time(() => ops.attention(q, k, v).out.dispose());
  const weights = await time(() => {
    const r = ops.attention(q, k, v, { returnWeights: true });
    r.out.dispose();
    r.weights!.dispose();
  });
  const record = await time(() => probe.record(q, k));
  rows.push({
    keys,
    attention_ms: attention * 1e3,
    weights_ms: weights * 1e3,
    probe_ms: record * 1e3,
    per_token_28_layers_ms: record * 28 * 1e3,
  });
  for (const t of [q, k, v]) t.dispose();
  probe[Symbol.dispose]();
}
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'relevance_probe.json'), `${JSON.stringify(rows, null, 2)}\n`);
console.log(
  '| video tokens | decode attention ms | attention + weights ms (old probe) | probe (mass kernel) ms | probe × 28 layers ms/token |',
);
console.log('| ---: | ---: | ---: | ---: | ---: |');
for (const r of rows)
  console.log(
    `| ${r.keys} | ${r.attention_ms.toFixed(3)} | ${r.weights_ms.toFixed(3)} | ${r.probe_ms.toFixed(3)} | ${r.per_token_28_layers_ms.toFixed(2)} |`,
  );
