// Parity of the Mamba-2 kernels (native/cuda/ssd.cu, conv1d.cu) with the CPU backend: the chunked scan at
// lengths that are not a multiple of the chunk, 1 and 2 groups, an initial state carried across a split
// prefill, the single-token step against the scan, and the causal conv with its carried state.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { assertParity, cpu, gpu, pair, values } from './helpers.js';

// bf16 operands of the tensor-core products: compare at a floor of the data's scale (outputs cancel).
const CHECK: Record<string, { tol: number; floor: number }> = {
  bf16: { tol: 2e-2, floor: 0.5 },
  f32: { tol: 1e-4, floor: 0.1 },
};
// Final states are f32 in both dtypes: with bf16 inputs only the inputs' own rounding remains (the kernel splits
// the decay-weighted x operand of the chunk-state product into two bf16 parts), so they are held tighter than y.
const STATE: Record<string, { tol: number; floor: number }> = {
  bf16: { tol: 1e-3, floor: 5e-2 },
  f32: { tol: 1e-4, floor: 0.1 },
};

interface SsdShape {
  batch: number;
  len: number;
  heads: number;
  headDim: number;
  groups: number;
  dState: number;
}

/** Host values of one SSD problem; `slice` cuts tokens [t0, t1) as tensors on both backends. */
function ssdProblem(s: SsdShape, dtype: DType) {
  const { batch, len, heads, headDim, groups, dState } = s;
  const host = {
    x: values(batch * len * heads * headDim, -1, 1),
    dt: values(batch * len * heads, 0.005, 0.2),
    A: values(heads, -8, -0.5),
    B: values(batch * len * groups * dState, -1, 1),
    C: values(batch * len * groups * dState, -1, 1),
    D: values(heads, 0.5, 1.5),
    state: values(batch * heads * headDim * dState, -1, 1),
  };
  const cut = (v: Float32Array, inner: number, t0: number, t1: number) => {
    const out = new Float32Array(batch * (t1 - t0) * inner);
    for (let b = 0; b < batch; b++)
      out.set(v.subarray((b * len + t0) * inner, (b * len + t1) * inner), b * (t1 - t0) * inner);
    return out;
  };
  const slice = (t0: number, t1: number) => {
    const n = t1 - t0;
    return {
      x: pair(cut(host.x, heads * headDim, t0, t1), [batch, n, heads, headDim], dtype),
      dt: pair(cut(host.dt, heads, t0, t1), [batch, n, heads], 'f32'),
      B: pair(cut(host.B, groups * dState, t0, t1), [batch, n, groups, dState], dtype),
      C: pair(cut(host.C, groups * dState, t0, t1), [batch, n, groups, dState], dtype),
    };
  };
  return {
    slice,
    A: pair(host.A, [heads], 'f32'),
    D: pair(host.D, [heads], 'f32'),
    state: pair(host.state, [batch, heads, headDim, dState], 'f32'),
  };
}

const side = (i: 0 | 1, p: ReturnType<ReturnType<typeof ssdProblem>['slice']>) => ({
  x: p.x[i],
  dt: p.dt[i],
  B: p.B[i],
  C: p.C[i],
});

for (const dtype of ['bf16', 'f32'] as const) {
  const { tol, floor } = CHECK[dtype];
  const st = STATE[dtype];

  test(`ssdScan ${dtype}: 2 groups, length not a multiple of the chunk, initial state, split prefill`, async () => {
    const shape = { batch: 2, len: 300, heads: 4, headDim: 40, groups: 2, dState: 72 };
    const pr = ssdProblem(shape, dtype);
    const [gA, cA] = pr.A;
    const [gD, cD] = pr.D;
    // Whole sequence on the CPU; two halves on the GPU with the state carried between them.
    const all = pr.slice(0, shape.len);
    const ref = ops.ssdScan({ ...side(1, all), A: cA, D: cD, state: pr.state[1] }, 64);
    const first = pr.slice(0, 131);
    const second = pr.slice(131, shape.len);
    const g1 = ops.ssdScan({ ...side(0, first), A: gA, D: gD, state: pr.state[0] }, 64);
    const g2 = ops.ssdScan({ ...side(0, second), A: gA, D: gD, state: g1.state }, 64);
    const refFirst = ops.ssdScan({ ...side(1, first), A: cA, D: cD, state: pr.state[1] }, 64);
    const refSecond = ops.ssdScan({ ...side(1, second), A: cA, D: cD, state: refFirst.state }, 64);
    await assertParity(g1.y, refFirst.y, tol, 'first half y', floor);
    await assertParity(g2.y, refSecond.y, tol, 'second half y', floor);
    await assertParity(g2.state, ref.state, st.tol, 'final state after the split', st.floor);
  });

  test(`ssdScan ${dtype}: Mamba-2 layout (headDim 64, dState 128, 1 group, chunk 256, no D)`, async () => {
    const shape = { batch: 1, len: 517, heads: 3, headDim: 64, groups: 1, dState: 128 };
    const pr = ssdProblem(shape, dtype);
    const p = pr.slice(0, shape.len);
    const g = ops.ssdScan({ ...side(0, p), A: pr.A[0] }, 256);
    const c = ops.ssdScan({ ...side(1, p), A: pr.A[1] }, 256);
    await assertParity(g.y, c.y, tol, 'y', floor);
    await assertParity(g.state, c.state, st.tol, 'state', st.floor);
  });

  test(`ssdScan ${dtype}: rows that do not fill 16-byte pieces (headDim 20, dState 50), chunk 192`, async () => {
    const shape = { batch: 2, len: 401, heads: 4, headDim: 20, groups: 2, dState: 50 };
    const pr = ssdProblem(shape, dtype);
    const p = pr.slice(0, shape.len);
    const g = ops.ssdScan({ ...side(0, p), A: pr.A[0], D: pr.D[0], state: pr.state[0] }, 192);
    const c = ops.ssdScan({ ...side(1, p), A: pr.A[1], D: pr.D[1], state: pr.state[1] }, 192);
    await assertParity(g.y, c.y, tol, 'y', floor);
    await assertParity(g.state, c.state, st.tol, 'state', st.floor);
  });

  test(`ssmStep ${dtype}: token-by-token steps equal the scan`, async () => {
    const shape = { batch: 2, len: 9, heads: 4, headDim: 24, groups: 2, dState: 40 };
    const pr = ssdProblem(shape, dtype);
    const [gA, cA] = pr.A;
    const [gD, cD] = pr.D;
    const scan = ops.ssdScan({ ...side(1, pr.slice(0, shape.len)), A: cA, D: cD, state: pr.state[1] }, 256);
    const state = pr.state[0];
    const ys: Tensor[] = [];
    for (let t = 0; t < shape.len; t++) {
      const p = pr.slice(t, t + 1);
      const squeeze = (v: Tensor) => v.reshape(v.shape.filter((_, i) => i !== 1));
      ys.push(
        ops.ssmStep({
          x: squeeze(p.x[0]),
          dt: squeeze(p.dt[0]),
          B: squeeze(p.B[0]),
          C: squeeze(p.C[0]),
          A: gA,
          D: gD,
          state,
        }),
      );
    }
    await assertParity(state, scan.state, st.tol, 'state after the steps', st.floor);
    // y of step t is token t of the scan.
    const want = await scan.y.data();
    const inner = shape.heads * shape.headDim;
    for (let t = 0; t < shape.len; t++) {
      const rows = new Float32Array(shape.batch * inner);
      for (let b = 0; b < shape.batch; b++)
        rows.set(want.subarray((b * shape.len + t) * inner, (b * shape.len + t + 1) * inner), b * inner);
      const ref = ops.tensor(cpu, rows, [shape.batch, shape.heads, shape.headDim], dtype);
      await assertParity(ys[t], ref, tol, `step ${t} y`, floor);
    }
  });

  test(`conv1d ${dtype}: SiLU, bias, state carried across a split (odd and 16-byte-packed channel counts)`, async () => {
    for (const ch of [37, 136]) {
      const [batch, len, width] = [2, 53, 4];
      const x = values(batch * len * ch);
      const cut = (t0: number, t1: number) => {
        const out = new Float32Array(batch * (t1 - t0) * ch);
        for (let b = 0; b < batch; b++)
          out.set(x.subarray((b * len + t0) * ch, (b * len + t1) * ch), b * (t1 - t0) * ch);
        return pair(out, [batch, t1 - t0, ch], dtype);
      };
      const [gw, cw] = pair(values(ch * width, -1, 1), [ch, width], 'f32');
      const [gb, cb] = pair(values(ch, -0.5, 0.5), [ch], 'f32');
      const [gs, cs] = pair(values(batch * (width - 1) * ch), [batch, width - 1, ch], dtype);
      const [gx1, cx1] = cut(0, 2);
      const [gx2, cx2] = cut(2, len);
      const g1 = ops.conv1dCausal(gx1, gw, gb, { state: gs, silu: true });
      const g2 = ops.conv1dCausal(gx2, gw, gb, { state: g1.state, silu: true });
      const c1 = ops.conv1dCausal(cx1, cw, cb, { state: cs, silu: true });
      const c2 = ops.conv1dCausal(cx2, cw, cb, { state: c1.state, silu: true });
      await assertParity(g1.y, c1.y, tol, 'conv1d y (2 tokens)', floor);
      await assertParity(g2.y, c2.y, tol, 'conv1d y (rest)', floor);
      await assertParity(g2.state, c2.state, 0, 'conv1d state');
    }
    assert.equal(gpu.name, 'cuda');
  });
}
