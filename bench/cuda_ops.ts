/**
 * CUDA op benchmark: GEMMs at Qwen2-VL-7B / Vamba shapes (TFLOP/s, % of the measured 8192³ peak and of
 * PyTorch), memory-bound kernels as a fraction of device copy bandwidth measured in the same run.
 *   tsx bench/cuda_ops.ts [--peer peer.json] [--out dir] [--quick]
 * Run bench/cuda_ops_peer.py first in the same job to fill the PyTorch column.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import '../src/index.js';
import type { Backend } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const outDir = arg('--out') ?? process.env.OUT ?? '.bench-out';
const quick = process.argv.includes('--quick');
const peerPath = arg('--peer');
const peer: Record<string, number> =
  peerPath && existsSync(peerPath) ? JSON.parse(readFileSync(peerPath, 'utf8')) : {};

const gpu: Backend = await getBackend('cuda');

/** Mean seconds per call of fn, after warm-up, over ≥ minTime seconds (at least 3 calls). */
async function time(fn: () => void, minTime = quick ? 0.05 : 0.2): Promise<number> {
  fn();
  await gpu.synchronize();
  // Batches of calls between synchronisations, doubled until one lasts minTime: a synchronisation per call
  // would add its round trip to every short kernel.
  for (let batch = 4; ; batch *= 2) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) fn();
    await gpu.synchronize();
    const s = (performance.now() - t0) / 1000;
    if (s >= minTime) return s / batch;
  }
}

/** Random device data without a host round trip of its size: the outer product of two random vectors. */
function rand(shape: number[], dtype: DType = 'bf16'): Tensor {
  const cols = shape[shape.length - 1];
  const rows = shape.reduce((a, b) => a * b, 1) / cols;
  const vec = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  const a = ops.tensor(gpu, vec(rows), [rows, 1], dtype);
  const b = ops.tensor(gpu, vec(cols), [1, cols], dtype);
  const t = ops.mul(a, b);
  a.dispose();
  b.dispose();
  const out = t.reshape(shape);
  t.dispose();
  return out;
}

interface Row {
  name: string;
  kind: 'gemm' | 'memory';
  ms: number;
  tflops?: number;
  gbps?: number;
  ofPeak?: number;
  ofCopy?: number;
  ofTorch?: number;
  torchMs?: number;
}
const rows: Row[] = [];

// ---- device copy bandwidth ----------------------------------------------------------------------------

const copyElems = 256 * 1024 * 1024; // 512 MiB of bf16
const src = rand([copyElems]);
const dst = ops.empty(gpu, [copyElems], 'bf16');
const copyS = await time(() => gpu.cast(dst, src));
const copyGBps = (2 * copyElems * 2) / copyS / 1e9;
src.dispose();
dst.dispose();
rows.push({ name: 'copy (D2D memcpy, 512 MiB)', kind: 'memory', ms: copyS * 1e3, gbps: copyGBps, ofCopy: 1 });

// ---- GEMM peak ------------------------------------------------------------------------------------------

async function gemm(name: string, m: number, k: number, n: number, dtype: DType = 'bf16'): Promise<number> {
  const x = rand([m, k], dtype);
  const w = rand([n, k], dtype);
  const out = ops.empty(gpu, [m, n], dtype);
  const desc = { batch: 1, m, n, k, transA: false, transB: true, bBatched: false, alpha: 1 };
  const s = await time(() => gpu.matmul(out, x, w, null, desc));
  for (const t of [x, w, out]) t.dispose();
  const tflops = (2 * m * n * k) / s / 1e12;
  const torchMs = peer[name];
  rows.push({
    name,
    kind: 'gemm',
    ms: s * 1e3,
    tflops,
    torchMs,
    ofTorch: torchMs ? torchMs / (s * 1e3) : undefined,
  });
  return tflops;
}

const peak = await gemm('gemm bf16 8192x8192x8192 (peak)', 8192, 8192, 8192);
const SHAPES: [string, number, number][] = [
  ['q/o proj 3584→3584', 3584, 3584],
  ['k/v proj 3584→512', 3584, 512],
  ['mlp up/gate 3584→18944', 3584, 18944],
  ['mlp down 18944→3584', 18944, 3584],
  ['mamba in_proj 3584→14704', 3584, 14704],
  ['mamba out_proj 7168→3584', 7168, 3584],
  ['vision qkv 1280→3840', 1280, 3840],
  ['vision merger 5120→5120', 5120, 5120],
  ['lm_head 3584→152064', 3584, 152064],
];
for (const m of quick ? [4096] : [4096, 16384])
  for (const [label, k, n] of SHAPES) await gemm(`gemm bf16 M=${m} ${label}`, m, k, n);
await gemm('gemm f32 M=4096 3584→3584 (no TF32)', 4096, 3584, 3584, 'f32');
for (const r of rows) if (r.kind === 'gemm') r.ofPeak = r.tflops! / peak;

// ---- memory-bound kernels -----------------------------------------------------------------------------

async function memory(name: string, bytes: number, fn: () => void): Promise<void> {
  const s = await time(fn);
  const gbps = bytes / s / 1e9;
  const torchMs = peer[name];
  rows.push({
    name,
    kind: 'memory',
    ms: s * 1e3,
    gbps,
    ofCopy: gbps / copyGBps,
    torchMs,
    ofTorch: torchMs ? torchMs / (s * 1e3) : undefined,
  });
}

const T = quick ? 4096 : 16384;
{
  const x = rand([T, 3584]);
  const w = rand([3584]);
  const out = ops.empty(gpu, [T, 3584], 'bf16');
  const nd = { rows: T, dim: 3584, eps: 1e-6, groupSize: 3584, normBeforeGate: false };
  await memory(`rmsNorm bf16 ${T}x3584`, 2 * T * 3584 * 2, () => gpu.rmsNorm(out, x, w, null, nd));
  const g = rand([T, 3584]);
  await memory(`gated rmsNorm bf16 ${T}x3584 (group 448)`, 3 * T * 3584 * 2, () =>
    gpu.rmsNorm(out, x, w, g, { ...nd, groupSize: 448 }),
  );
  await memory(`softmax bf16 ${T}x3584`, 2 * T * 3584 * 2, () => gpu.softmax(out, x, T, 3584));
  for (const t of [x, w, out, g]) t.dispose();
}
{
  const x = rand([T, 1280]);
  const w = rand([1280]);
  const out = ops.empty(gpu, [T, 1280], 'bf16');
  const nd = { rows: T, dim: 1280, eps: 1e-6, groupSize: 1280, normBeforeGate: false };
  await memory(`layerNorm bf16 ${T}x1280`, 2 * T * 1280 * 2, () => gpu.layerNorm(out, x, w, w, nd));
  for (const t of [x, w, out]) t.dispose();
}
{
  const n = T * 18944;
  const a = rand([T, 18944]);
  const b = rand([T, 18944]);
  const out = ops.empty(gpu, [T, 18944], 'bf16');
  await memory(`silu bf16 ${T}x18944`, 2 * n * 2, () => gpu.unary(out, 'silu', a));
  const d = { outShape: [T, 18944], aStrides: [18944, 1], bStrides: [18944, 1] };
  await memory(`mul bf16 ${T}x18944`, 3 * n * 2, () => gpu.binary(out, 'mul', a, b, d));
  const bias = rand([18944]);
  await memory(`add bias (broadcast) bf16 ${T}x18944`, 2 * n * 2, () =>
    gpu.binary(out, 'add', a, bias, { ...d, bStrides: [0, 1] }),
  );
  const f = ops.empty(gpu, [T, 18944], 'f32');
  await memory(`cast bf16→f32 ${T}x18944`, n * 6, () => gpu.cast(f, a));
  for (const t of [a, b, out, bias, f]) t.dispose();
}
{
  const x = rand([1, T, 28, 128]);
  const cos = rand([T, 128], 'f32');
  const out = ops.empty(gpu, [1, T, 28, 128], 'bf16');
  const rd = { batch: 1, seq: T, heads: 28, headDim: 128, rotaryDim: 128, tableShared: true };
  await memory(`rotary bf16 ${T}x28x128`, 2 * T * 28 * 128 * 2, () => gpu.rotary(out, x, cos, cos, rd));
  const p = ops.empty(gpu, [1, 28, T, 128], 'bf16');
  await memory(`permute bf16 [${T},28,128]→[28,${T},128]`, 2 * T * 28 * 128 * 2, () =>
    gpu.permute(p, x, [0, 2, 1, 3]),
  );
  for (const t of [x, cos, out, p]) t.dispose();
}
{
  const table = rand([152064, 3584]);
  const ids = ops.tensor(
    gpu,
    Int32Array.from({ length: T }, (_, i) => (i * 7919) % 152064),
    [T],
    'i32',
  );
  const out = ops.empty(gpu, [T, 3584], 'bf16');
  await memory(`embedding bf16 ${T} rows of 3584`, 2 * T * 3584 * 2, () => gpu.embedding(out, table, ids));
  for (const t of [table, ids, out]) t.dispose();
}
{
  const logits = rand([1, 152064], 'f32');
  const out = ops.empty(gpu, [1], 'i32');
  const u = new Float32Array([0.5]);
  const sd = { rows: 1, vocab: 152064, temperature: 0.7, topK: 50, topP: 0.9, repetitionPenalty: 1.1 };
  const s = await time(() => gpu.sample(out, logits, u, null, sd));
  rows.push({ name: 'sample 1×152064 (top-k 50, top-p 0.9)', kind: 'memory', ms: s * 1e3 });
  logits.dispose();
  out.dispose();
}

// ---- report ---------------------------------------------------------------------------------------------

const pct = (v: number | undefined) => (v === undefined ? '' : `${(v * 100).toFixed(0)}%`);
const info = (gpu as unknown as { device?: { name: string } }).device;
console.log(
  `\nCUDA ops on ${info?.name ?? 'GPU'} — copy bandwidth ${copyGBps.toFixed(0)} GB/s, bf16 GEMM peak ${peak.toFixed(0)} TFLOP/s`,
);
console.log('| op | ms | TFLOP/s | GB/s | % peak | % copy BW | torch ms | % of torch |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows)
  console.log(
    `| ${r.name} | ${r.ms.toFixed(3)} | ${r.tflops?.toFixed(0) ?? ''} | ${r.gbps?.toFixed(0) ?? ''} | ${pct(r.ofPeak)} | ${pct(r.ofCopy)} | ${r.torchMs?.toFixed(3) ?? ''} | ${pct(r.ofTorch)} |`,
  );
mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, 'cuda_ops.json'),
  JSON.stringify({ device: info, copyGBps, peakTflops: peak, memory: gpu.memory(), rows }, null, 2),
);
console.log(`\nwrote ${join(outDir, 'cuda_ops.json')}`);
