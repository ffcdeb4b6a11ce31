/**
 * GPU time of one `ssdScanBackward` call (native/cuda/grad.cu) at the shapes of the tiny needle models' training
 * steps and of a Nemotron-H layer, to compare builds of the kernel (run it on each; same card).
 *   tsx bench/ssd_backward.ts [--dtype f32|bf16]
 */
import '../src/index.js';
import type { SsdDesc } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';

const gpu = await getBackend('cuda');
const at = process.argv.indexOf('--dtype');
const dtype = (at >= 0 ? process.argv[at + 1] : 'f32') as DType;

const shapes: Array<[string, Omit<SsdDesc, 'chunkSize'>]> = [
  ['Vamba tiny (32 × 256 tokens)', { batch: 32, len: 256, heads: 12, headDim: 32, groups: 1, dState: 32 }],
  // The tiny needle TimeViper's training step (v1 data, 32 videos of 32 frames): 42 sequences padded to 434 rows.
  [
    'TimeViper tiny step (42 × 434 tokens)',
    { batch: 42, len: 434, heads: 12, headDim: 32, groups: 1, dState: 32 },
  ],
  ['Nemotron-H layer (8k tokens)', { batch: 1, len: 8192, heads: 128, headDim: 64, groups: 8, dState: 128 }],
];

/** Values in [lo, hi) from a host array (the sizes here are small enough to upload). */
function rand(shape: number[], dt: DType, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return ops.tensor(
    gpu,
    Float32Array.from({ length: n }, () => lo + (hi - lo) * Math.random()),
    shape,
    dt,
  );
}

console.log(`| shape | ${dtype} ms per call |\n|---|---|`);
for (const [name, s] of shapes) {
  const { batch, len, heads: H, headDim: P, groups: G, dState: N } = s;
  const i = {
    x: rand([batch, len, H, P], dtype),
    dt: rand([batch, len, H], 'f32', 0.005, 0.3),
    A: rand([H], 'f32', -4, -0.5),
    B: rand([batch, len, G, N], dtype),
    C: rand([batch, len, G, N], dtype),
    D: rand([H], 'f32'),
    state: rand([batch, H, P, N], 'f32'),
  };
  const dy = rand([batch, len, H, P], dtype);
  const dStateOut = rand([batch, H, P, N], 'f32');
  const g = {
    dx: ops.empty(gpu, i.x.shape, dtype),
    ddt: ops.empty(gpu, i.dt.shape, 'f32'),
    dA: ops.empty(gpu, [H], 'f32'),
    dB: ops.empty(gpu, i.B.shape, dtype),
    dC: ops.empty(gpu, i.C.shape, dtype),
    dD: ops.empty(gpu, [H], 'f32'),
    dState: ops.empty(gpu, i.state.shape, 'f32'),
  };
  const call = () => gpu.ssdScanBackward?.(g, dy, dStateOut, i, { ...s, chunkSize: 256 });
  call();
  await gpu.synchronize();
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 500 || calls < 3) {
    call();
    await gpu.synchronize();
    calls++;
  }
  console.log(`| ${name}: ${JSON.stringify(s)} | ${((performance.now() - t0) / calls).toFixed(3)} |`);
  for (const t of [...Object.values(i), ...Object.values(g), dy, dStateOut]) t.dispose();
}
