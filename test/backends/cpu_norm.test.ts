// Norms, softmax and rotary variants (1-D, Qwen2-VL M-RoPE, 2-D vision) against f64 loops written here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import * as ops from '../../src/runtime/ops.js';
import { assertClose, assertCloseScaled, randint, randn, seeded } from '../helpers.js';

const cpu = cpuBackend();
const silu = (z: number) => z / (1 + Math.exp(-z));

test(
  'rmsNorm: plain, no weight, gated (norm after / before gate), grouped',
  seeded(async (r) => {
    const rows = randint(r, 1, 5);
    const dim = 24;
    const xv = randn(rows * dim, r);
    const gv = randn(rows * dim, r, -3, 3);
    const wv = randn(dim, r);
    for (const groupSize of [dim, 8, 3])
      for (const gated of [false, true])
        for (const before of [false, true]) {
          const y = ops.rmsNorm(ops.tensor(cpu, xv, [rows, dim]), ops.tensor(cpu, wv, [dim]), {
            eps: 1e-6,
            gate: gated ? ops.tensor(cpu, gv, [rows, dim]) : null,
            normBeforeGate: before,
            groupSize,
          });
          const ref = new Float64Array(rows * dim);
          for (let row = 0; row < rows; row++)
            for (let g = 0; g < dim; g += groupSize) {
              const idx = Array.from({ length: groupSize }, (_, i) => row * dim + g + i);
              const v = idx.map((i) => (gated && !before ? xv[i] * silu(gv[i]) : xv[i]));
              const inv = 1 / Math.sqrt(v.reduce((s, z) => s + z * z, 0) / groupSize + 1e-6);
              idx.forEach((i, j) => {
                ref[i] = v[j] * inv * wv[g + j] * (gated && before ? silu(gv[i]) : 1);
              });
            }
          assertClose(await y.toArray(), ref, 1e-5, `group ${groupSize} gated ${gated} before ${before}`);
        }
    const plain = await ops.rmsNorm(ops.tensor(cpu, xv, [rows, dim]), null, { eps: 1e-5 }).toArray();
    const ref = Array.from(xv, (v, i) => {
      const row = Math.floor(i / dim);
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += xv[row * dim + j] ** 2;
      return v / Math.sqrt(ss / dim + 1e-5);
    });
    assertClose(plain, ref, 1e-5, 'no weight');
    assert.throws(
      () => ops.rmsNorm(ops.zeros(cpu, [2, 6]), null, { eps: 1e-5, groupSize: 4 }),
      /does not divide/,
    );
    assert.throws(() => ops.rmsNorm(ops.zeros(cpu, [2, 6]), ops.zeros(cpu, [5]), { eps: 1e-5 }), /weight/);
  }),
);

test(
  'layerNorm with and without affine parameters; bf16 input',
  seeded(async (r) => {
    const [rows, dim] = [3, 17];
    const xv = randn(rows * dim, r, -2, 3);
    const wv = randn(dim, r);
    const bv = randn(dim, r);
    const ref = (w: boolean) =>
      Array.from(xv, (v, i) => {
        const row = xv.subarray(Math.floor(i / dim) * dim, Math.floor(i / dim) * dim + dim);
        const mean = row.reduce((a, b) => a + b, 0) / dim;
        const varc = row.reduce((a, b) => a + (b - mean) ** 2, 0) / dim;
        const n = (v - mean) / Math.sqrt(varc + 1e-6);
        return w ? n * wv[i % dim] + bv[i % dim] : n;
      });
    const x = ops.tensor(cpu, xv, [rows, dim]);
    // Outputs are O(1) and the kernels work in f32 (the C kernel's mean and variance too): an output that
    // n·w + b cancels to near zero carries an f32 rounding of its terms (~1e-7), so errors are judged
    // against the largest output.
    assertCloseScaled(
      await ops.layerNorm(x, ops.tensor(cpu, wv, [dim]), ops.tensor(cpu, bv, [dim]), 1e-6).toArray(),
      ref(true),
      1e-5,
      'affine',
    );
    assertCloseScaled(await ops.layerNorm(x, null, null, 1e-6).toArray(), ref(false), 1e-5, 'plain');
    const xb = ops.tensor(cpu, xv, [rows, dim], 'bf16');
    // Normalised values are O(1): bf16 input and output rounding stay within 2e-2 of that scale.
    assertClose(await ops.layerNorm(xb, null, null, 1e-6).toArray(), ref(false), 2e-2, 'bf16', 1);
  }),
);

test(
  'softmax: rows sum to 1, match exp/sum, −∞ entries get 0 and all-−∞ rows give zeros',
  seeded(async (r) => {
    const [rows, dim] = [4, 13];
    const xv = randn(rows * dim, r, -20, 20);
    xv[3] = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < dim; j++) xv[2 * dim + j] = Number.NEGATIVE_INFINITY;
    const y = await ops.softmax(ops.tensor(cpu, xv, [rows, dim])).toArray();
    const ref: number[] = [];
    for (let row = 0; row < rows; row++) {
      const v = Array.from(xv.subarray(row * dim, (row + 1) * dim));
      const m = Math.max(...v);
      if (m === Number.NEGATIVE_INFINITY) ref.push(...v.map(() => 0));
      else {
        const e = v.map((z) => Math.exp(z - m));
        const s = e.reduce((a, b) => a + b, 0);
        ref.push(...e.map((z) => z / s));
      }
    }
    assertClose(y, ref, 1e-5, 'softmax', 1e-6);
    assert.equal(y[3], 0);
    assert.ok(y.slice(2 * dim, 3 * dim).every((v) => v === 0));
  }),
);

/** out = x·cos + rotate_half(x)·sin on the first `rot` dims of each head, in f64 (the f32 tables are inputs). */
function rotaryRef(
  x: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  [batch, seq, heads, dim]: number[],
  rot: number,
  tableBatched: boolean,
) {
  const out = Float64Array.from(x);
  const half = rot / 2;
  for (let b = 0; b < batch; b++)
    for (let s = 0; s < seq; s++)
      for (let h = 0; h < heads; h++) {
        const base = ((b * seq + s) * heads + h) * dim;
        const t = ((tableBatched ? b : 0) * seq + s) * rot;
        for (let i = 0; i < rot; i++) {
          const rotated = i < half ? -x[base + i + half] : x[base + i - half];
          out[base + i] = x[base + i] * cos[t + i] + rotated * sin[t + i];
        }
      }
  return out;
}

/** HF's inverse frequencies 1/θ^(2i/dim) for i < dim/2. */
const invFreq = (dim: number, theta: number) =>
  Array.from({ length: dim / 2 }, (_, i) => 1 / theta ** ((2 * i) / dim));

test(
  'rotary: 1-D positions, partial rotary dims, batched tables',
  seeded(async (r) => {
    const [batch, seq, heads, dim] = [2, 5, 3, 16];
    for (const rot of [16, 8]) {
      const xv = randn(batch * seq * heads * dim, r);
      const freqs = invFreq(rot, 10000);
      const cos = new Float32Array(batch * seq * rot);
      const sin = new Float32Array(batch * seq * rot);
      for (let b = 0; b < batch; b++)
        for (let s = 0; s < seq; s++) {
          const pos = s + 7 * b; // different positions per batch row
          for (let i = 0; i < rot; i++) {
            const ang = pos * freqs[i % (rot / 2)];
            cos[(b * seq + s) * rot + i] = Math.cos(ang);
            sin[(b * seq + s) * rot + i] = Math.sin(ang);
          }
        }
      const y = ops.rotary(
        ops.tensor(cpu, xv, [batch, seq, heads, dim]),
        ops.tensor(cpu, cos, [batch, seq, rot]),
        ops.tensor(cpu, sin, [batch, seq, rot]),
      );
      assertClose(
        await y.toArray(),
        rotaryRef(xv, cos, sin, [batch, seq, heads, dim], rot, true),
        1e-5,
        `rot ${rot}`,
      );
    }
    assert.throws(
      () => ops.rotary(ops.zeros(cpu, [1, 4, 2, 8]), ops.zeros(cpu, [3, 8]), ops.zeros(cpu, [3, 8])),
      /does not fit/,
    );
  }),
);

test(
  'rotary: Qwen2-VL M-RoPE — sections of the frequencies read the t, h or w position row',
  seeded(async (r) => {
    // Qwen2-VL-7B: mrope_section [16, 24, 24] over headDim 128 (64 frequencies: 16 t, 24 h, 24 w).
    const section = [16, 24, 24];
    const [seq, heads, dim] = [9, 2, 128];
    const freqs = invFreq(dim, 1e6);
    // Position rows (t, h, w): 3 text tokens, then a 2×3 image grid at t = 3.
    const pos = [
      [0, 1, 2, 3, 3, 3, 3, 3, 3],
      [0, 1, 2, 3, 3, 3, 4, 4, 4],
      [0, 1, 2, 3, 4, 5, 3, 4, 5],
    ];
    const cos = new Float32Array(seq * dim);
    const sin = new Float32Array(seq * dim);
    for (let s = 0; s < seq; s++)
      for (let i = 0; i < dim; i++) {
        const f = i % (dim / 2);
        // Frequency f belongs to section 0 (t), 1 (h) or 2 (w); the halves repeat the same sections.
        const which = f < section[0] ? 0 : f < section[0] + section[1] ? 1 : 2;
        const ang = pos[which][s] * freqs[f];
        cos[s * dim + i] = Math.cos(ang);
        sin[s * dim + i] = Math.sin(ang);
      }
    const xv = randn(seq * heads * dim, r);
    const y = ops.rotary(
      ops.tensor(cpu, xv, [seq, heads, dim]),
      ops.tensor(cpu, cos, [seq, dim]),
      ops.tensor(cpu, sin, [seq, dim]),
    );
    assert.deepEqual(y.shape, [seq, heads, dim]);
    const ref = rotaryRef(xv, cos, sin, [1, seq, heads, dim], dim, false);
    // x₁cos − x₂sin cancels towards zero: judged against the largest output.
    assertCloseScaled(await y.toArray(), ref, 1e-5, 'mrope');
    // For text tokens (t = h = w) M-RoPE equals plain 1-D RoPE.
    const plain = new Float32Array(3 * dim);
    for (let s = 0; s < 3; s++)
      for (let i = 0; i < dim; i++) plain[s * dim + i] = Math.cos(s * freqs[i % (dim / 2)]);
    assert.deepEqual(cos.subarray(0, 3 * dim), plain, 'text positions');
  }),
);

test(
  'rotary: 2-D vision RoPE — first half of the frequencies from the row, second from the column',
  seeded(async (r) => {
    const [gh, gw, heads, dim] = [3, 4, 2, 16];
    const seq = gh * gw;
    // Qwen2-VL ViT: inv_freq over dim/2, angles [h·f, w·f] concatenated, then repeated twice.
    const freqs = invFreq(dim / 2, 10000);
    const cos = new Float32Array(seq * dim);
    const sin = new Float32Array(seq * dim);
    for (let s = 0; s < seq; s++) {
      const [hp, wp] = [Math.floor(s / gw), s % gw];
      const ang = [...freqs.map((f) => hp * f), ...freqs.map((f) => wp * f)];
      for (let i = 0; i < dim; i++) {
        cos[s * dim + i] = Math.cos(ang[i % (dim / 2)]);
        sin[s * dim + i] = Math.sin(ang[i % (dim / 2)]);
      }
    }
    const xv = randn(seq * heads * dim, r);
    const y = ops.rotary(
      ops.tensor(cpu, xv, [1, seq, heads, dim]),
      ops.tensor(cpu, cos, [seq, dim]),
      ops.tensor(cpu, sin, [seq, dim]),
    );
    assertClose(
      await y.toArray(),
      rotaryRef(xv, cos, sin, [1, seq, heads, dim], dim, false),
      1e-5,
      'vision 2-D',
    );
  }),
);

/** f32 → bf16 → f32, round to nearest even (written here, independent of src/runtime/dtype.ts). */
function bf16(v: number): number {
  const u = new Uint32Array(new Float32Array([v]).buffer)[0];
  const r = (u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000;
  return new Float32Array(new Uint32Array([r >>> 0]).buffer)[0];
}

test(
  'addRmsNorm and addLayerNorm: the sum is x + residual as the dtype stores it, the norm is of that sum',
  seeded(async (r) => {
    const rows = randint(r, 1, 4);
    const dim = 20;
    const xv = randn(rows * dim, r);
    const rv = randn(rows * dim, r);
    const wv = randn(dim, r);
    const bv = randn(dim, r);
    for (const dtype of ['f32', 'bf16'] as const) {
      const round = dtype === 'f32' ? Math.fround : bf16;
      const x = ops.tensor(cpu, xv.map(round), [rows, dim], dtype);
      const res = ops.tensor(cpu, rv.map(round), [rows, dim], dtype);
      const sum = Array.from(xv, (v, i) => round(round(v) + round(rv[i])));
      const norm = (layer: boolean) => {
        const out = new Float64Array(rows * dim);
        for (let row = 0; row < rows; row++) {
          const s = sum.slice(row * dim, (row + 1) * dim);
          const m = layer ? s.reduce((a, b) => a + b, 0) / dim : 0;
          const inv = 1 / Math.sqrt(s.reduce((a, b) => a + (b - m) ** 2, 0) / dim + 1e-6);
          s.forEach((v, j) => {
            out[row * dim + j] = (v - m) * inv * wv[j] + (layer ? bv[j] : 0);
          });
        }
        return out;
      };
      const tol = dtype === 'f32' ? 1e-5 : 1e-2;
      const a = ops.addRmsNorm(x, res, ops.tensor(cpu, wv, [dim]), { eps: 1e-6 });
      assert.deepEqual(Array.from(await a.sum.toArray()), sum, `${dtype} rms: the stored sum`);
      assertClose(await a.out.toArray(), norm(false), tol, `${dtype} rms`);
      const b = ops.addLayerNorm(x, res, ops.tensor(cpu, wv, [dim]), ops.tensor(cpu, bv, [dim]), 1e-6);
      assert.deepEqual(Array.from(await b.sum.toArray()), sum, `${dtype} layer: the stored sum`);
      // n·w + b cancels towards zero: in f32 judged against the largest output.
      (dtype === 'f32' ? assertCloseScaled : assertClose)(
        await b.out.toArray(),
        norm(true),
        tol,
        `${dtype} layer`,
      );
    }
    assert.throws(
      () => ops.addRmsNorm(ops.zeros(cpu, [2, 6]), ops.zeros(cpu, [2, 5]), null, { eps: 1e-5 }),
      /residual \[2, 5\] f32 differs from x \[2, 6\] f32/,
    );
  }),
);
