// The fast CPU kernels (WebAssembly and every native instruction set this CPU runs) against the TypeScript
// reference kernels on the same inputs: GEMM (transposes, bias, alpha, bf16/f16 weights, odd sizes across
// the cache blocks and the small-m path), attention (causal, GQA, mask, weights, segments), the SSD scan
// (carried state, both decay paths, split over threads), the element-wise ops (every unary op, broadcasting
// binary ops), RMSNorm (gated both ways, grouped) and LayerNorm, and the causal conv1d with its state.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { cpuKernels, nativeIsas, useCpuKernels } from '../../src/backends/cpu/kernels.js';
import { parallelCalls, warmUp } from '../../src/backends/cpu/pool.js';
import { UsageError } from '../../src/errors.js';
import { UNARY_CODE, type UnaryOp } from '../../src/runtime/backend.js';
import * as ops from '../../src/runtime/ops.js';
import { tidy } from '../../src/runtime/scope.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { assertClose, randint, randn, seeded } from '../helpers.js';

// Builds the native kernels where a C compiler is (a no-op when up to date), so both paths are tested here.
execFileSync(
  process.execPath,
  [fileURLToPath(new URL('../../scripts/build-cpu.mjs', import.meta.url)), '--optional'],
  {
    stdio: 'ignore',
  },
);
const cpu = cpuBackend();
const FAST = ['wasm', ...nativeIsas()];

/** out() under the reference kernels and under `kernels`, as arrays (the kernels in use are restored). */
async function both(kernels: string, out: () => Tensor): Promise<[Float32Array, Float32Array]> {
  const before = useCpuKernels('ts');
  try {
    const ref = out();
    useCpuKernels(kernels);
    const fast = out();
    const r: [Float32Array, Float32Array] = [
      Float32Array.from(await ref.toArray()),
      Float32Array.from(await fast.toArray()),
    ];
    ref.dispose();
    fast.dispose();
    return r;
  } finally {
    useCpuKernels(before);
  }
}

/** GEMM tolerance by output dtype: f32 sums, or one ulp of a 16-bit rounding that may go the other way. */
const OUT_TOL = { f32: 2e-6, bf16: 2 ** -7, f16: 2 ** -10 };

// A loop, not Math.max(...v): a spread of a large output overflows the stack.
const scaleOf = (v: ArrayLike<number>) =>
  Array.prototype.reduce.call(v, (m: number, x) => Math.max(m, Math.abs(x as number)), 1e-30) as number;

test('cpu kernels: the native addon builds and loads wherever a C compiler is', () => {
  let cc = true;
  try {
    execFileSync(process.env.CC ?? 'cc', ['--version'], { stdio: 'ignore' });
  } catch {
    cc = false;
  }
  if (cc)
    assert.ok(
      nativeIsas().includes('base'),
      'native/cpu/build/longshot_cpu.node is missing: npm run build:cpu',
    );
  assert.ok(FAST.includes('wasm'));
  assert.ok(cpuKernels() !== 'ts', 'a fast kernel set is the default');
});

test('cpu kernels: the relaxed-SIMD module runs where the runtime has relaxed SIMD, else the SIMD one', () => {
  // A GEMM under the wasm kernels against the reference, in a child process with and without V8's flag (Node 20's
  // V8 ships relaxed SIMD behind it; Node 22's has it on).
  const script = `
    const { cpuBackend } = await import(${JSON.stringify(new URL('../../src/backends/cpu/index.ts', import.meta.url).href)});
    const { useCpuKernels } = await import(${JSON.stringify(new URL('../../src/backends/cpu/kernels.ts', import.meta.url).href)});
    const { wasmModule } = await import(${JSON.stringify(new URL('../../src/backends/cpu/wasm.ts', import.meta.url).href)});
    const ops = await import(${JSON.stringify(new URL('../../src/runtime/ops.ts', import.meta.url).href)});
    const cpu = cpuBackend();
    const v = (n, f) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * f));
    const a = ops.tensor(cpu, v(67 * 391, 12.9898), [67, 391]);
    const w = ops.tensor(cpu, v(45 * 391, 78.233), [45, 391]);
    useCpuKernels('ts');
    const ref = await ops.linear(a, w).toArray();
    useCpuKernels('wasm');
    const fast = await ops.linear(a, w).toArray();
    let err = 0, scale = 0;
    for (let i = 0; i < ref.length; i++) { err = Math.max(err, Math.abs(ref[i] - fast[i])); scale = Math.max(scale, Math.abs(ref[i])); }
    console.log(JSON.stringify({ module: wasmModule(), err: err / scale }));`;
  const run = (flags: string[]) =>
    JSON.parse(
      execFileSync(process.execPath, [...flags, '--import', 'tsx', '--input-type=module', '-e', script], {
        encoding: 'utf8',
      }),
    ) as { module: string; err: number };
  const relaxed = run(['--experimental-wasm-relaxed-simd']);
  assert.equal(relaxed.module, 'native/cpu/gemm-relaxed.wasm');
  assert.ok(relaxed.err < 1e-5, `relaxed SIMD GEMM error ${relaxed.err}`);
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22) {
    const plain = run(['--no-experimental-wasm-relaxed-simd']);
    assert.equal(plain.module, 'native/cpu/gemm.wasm');
    assert.ok(plain.err < 1e-5, `SIMD GEMM error ${plain.err}`);
  }
});

test('cpu kernels: LONGSHOT_CPU_KERNELS values are checked', () => {
  assert.throws(
    () => useCpuKernels('sse9'),
    (e: unknown) => e instanceof UsageError && /sse9.*use one of/.test(e.message),
  );
});

for (const kernels of FAST) {
  test(
    `cpu kernels ${kernels}: GEMM equals the reference (transposes, bias, alpha, 16-bit weights, odd sizes)`,
    seeded(async (r) => {
      const threads = await warmUp();
      const calls = parallelCalls();
      const shapes = [
        [1, 1, 1],
        [2, randint(r, 1, 40), randint(r, 1, 50)], // fewer rows than any register tile: the small path
        [randint(r, 3, 17), randint(r, 3, 37), randint(r, 1, 29)],
        [randint(r, 190, 210), randint(r, 33, 70), randint(r, 385, 420)], // crosses MC and KC
        [randint(r, 40, 70), randint(r, 200, 300), randint(r, 250, 300)], // big enough for the pool
      ];
      for (const [m, n, k] of shapes)
        for (const transA of [false, true])
          for (const transB of [false, true])
            for (const dtype of ['f32', 'bf16', 'f16'] as const) {
              const A = ops.tensor(cpu, randn(m * k, r), transA ? [k, m] : [m, k], dtype);
              const B = ops.tensor(cpu, randn(n * k, r), transB ? [n, k] : [k, n], dtype);
              const bias = r() < 0.5 ? ops.tensor(cpu, randn(n, r), [n], dtype) : null;
              const alpha = r() < 0.5 ? 1 : 0.37;
              const [ref, fast] = await both(kernels, () =>
                ops.matmul(A, B, { transA, transB, bias, alpha }),
              );
              // f32 accumulation over k terms of ±1: compared relative to √k, their typical sum. A 16-bit output
              // may round the other way where the two f32 sums straddle a rounding boundary: one ulp of it.
              assertClose(
                fast,
                ref,
                OUT_TOL[dtype],
                `${m}×${n}×${k} transA ${transA} transB ${transB} ${dtype}`,
                Math.sqrt(k),
              );
              for (const t of [A, B, bias]) t?.dispose();
            }
      const batched = ops.tensor(cpu, randn(5 * 13 * 21, r), [5, 13, 21]);
      const w = ops.tensor(cpu, randn(5 * 21 * 11, r), [5, 21, 11]);
      const [ref, fast] = await both(kernels, () => ops.matmul(batched, w));
      assertClose(fast, ref, 2e-6, 'batched B', Math.sqrt(21));
      if (threads > 1) assert.ok(parallelCalls() > calls, 'some GEMMs ran on the worker pool');
    }),
  );

  test(
    `cpu kernels ${kernels}: attention equals the reference (causal GQA, mask, weights, segments)`,
    seeded(async (r) => {
      const [sq, hq, hkv, d] = [randint(r, 20, 90), 6, 2, randint(r, 5, 40)];
      const q = ops.tensor(cpu, randn(sq * hq * d, r), [1, sq, hq, d]);
      const k = ops.tensor(cpu, randn(sq * hkv * d, r), [1, sq, hkv, d]);
      const v = ops.tensor(cpu, randn(sq * hkv * d, r), [1, sq, hkv, d]);
      const maskv = randn(sq * sq, r);
      for (let i = 0; i < sq; i++) maskv[i * sq + (i % 3)] = Number.NEGATIVE_INFINITY;
      const mask = ops.tensor(cpu, maskv, [1, sq, sq]);
      const cases = [
        { causal: true },
        { causal: false, mask },
        { causal: false, segments: [0, 7, Math.floor(sq / 2), sq] },
      ];
      for (const o of cases) {
        const [ref, fast] = await both(kernels, () => ops.attention(q, k, v, o).out);
        assertClose(fast, ref, 1e-5, `out ${JSON.stringify(Object.keys(o))}`, scaleOf(ref));
        const [wRef, wFast] = await both(kernels, () => {
          const { out, weights } = ops.attention(q, k, v, { ...o, returnWeights: true });
          out.dispose();
          return weights!;
        });
        assertClose(wFast, wRef, 1e-5, 'weights', 1);
      }
      for (const t of [q, k, v, mask]) t.dispose();
    }),
  );

  test(
    `cpu kernels ${kernels}: the SSD scan equals the reference`,
    seeded(async (r) => {
      const [L, H, P, G, N] = [randint(r, 70, 140), 4, randint(r, 3, 17), 2, randint(r, 4, 19)];
      const inputs = {
        x: ops.tensor(cpu, randn(L * H * P, r), [1, L, H, P]),
        dt: ops.tensor(cpu, randn(L * H, r, 0.01, 0.3), [1, L, H]),
        A: ops.tensor(cpu, randn(H, r, -2, -0.1), [H]),
        B: ops.tensor(cpu, randn(L * G * N, r), [1, L, G, N]),
        C: ops.tensor(cpu, randn(L * G * N, r), [1, L, G, N]),
        D: ops.tensor(cpu, randn(H, r), [H]),
      };
      for (const chunk of [16, 64]) {
        const [ref, fast] = await both(kernels, () => {
          const { y, state } = ops.ssdScan(inputs, chunk);
          state.dispose();
          return y;
        });
        assertClose(fast, ref, 1e-5, `chunk ${chunk} y`, scaleOf(ref));
      }
      for (const t of Object.values(inputs)) t.dispose();
    }),
  );

  test(
    `cpu kernels ${kernels}: the SSD scan with a carried state, 2 batches, growing decays, over threads`,
    seeded(async (r) => {
      const threads = await warmUp();
      const calls = parallelCalls();
      const [Bt, L, H, P, G, N] = [2, randint(r, 150, 260), 6, randint(r, 17, 40), 3, randint(r, 9, 33)];
      // Head 1's A is positive (decays above 1: the per-pair exp path) and head 4's cumulative sums pass −600.
      const A = randn(H, r, -2, -0.1);
      A[1] = 0.05;
      A[4] = -40;
      const inputs = {
        x: ops.tensor(cpu, randn(Bt * L * H * P, r), [Bt, L, H, P]),
        dt: ops.tensor(cpu, randn(Bt * L * H, r, 0.01, 0.3), [Bt, L, H]),
        A: ops.tensor(cpu, A, [H]),
        B: ops.tensor(cpu, randn(Bt * L * G * N, r), [Bt, L, G, N]),
        C: ops.tensor(cpu, randn(Bt * L * G * N, r), [Bt, L, G, N]),
        D: null,
        state: ops.tensor(cpu, randn(Bt * H * P * N, r), [Bt, H, P, N]),
      };
      for (const chunk of [37, 128]) {
        const [ref, fast] = await both(kernels, () =>
          tidy(() => {
            const { y, state } = ops.ssdScan(inputs, chunk);
            return ops.concat([y.reshape([y.size]), state.reshape([state.size])], 0);
          }),
        );
        assertClose(fast, ref, 1e-5, `chunk ${chunk} y and state`, scaleOf(ref));
      }
      if (threads > 1) assert.ok(parallelCalls() > calls, 'the scan was split over the pool');
      for (const t of Object.values(inputs)) t?.dispose();
    }),
  );

  test(
    `cpu kernels ${kernels}: every unary op and broadcasting binary ops equal the reference`,
    seeded(async (r) => {
      const n = randint(r, 37, 300);
      for (const op of Object.keys(UNARY_CODE) as UnaryOp[]) {
        const positive = op === 'log' || op === 'sqrt' || op === 'rsqrt';
        const x = ops.tensor(cpu, randn(n, r, positive ? 0.01 : -12, positive ? 30 : 25), [n]);
        const [ref, fast] = await both(kernels, () => ops.unary(op, x));
        assertClose(fast, ref, 2e-6, op, 0.1);
        x.dispose();
      }
      const [d0, d1, d2] = [randint(r, 2, 5), randint(r, 3, 9), randint(r, 5, 41)];
      const a = ops.tensor(cpu, randn(d0 * d1 * d2, r, -3, 3), [d0, d1, d2]);
      const shapes = [[d0, d1, d2], [d2], [d0, 1, d2], [d1, 1], [1]];
      for (const op of ['add', 'sub', 'mul', 'div', 'max', 'min', 'silu_mul'] as const)
        for (const shape of shapes) {
          const size = shape.reduce((p, q) => p * q, 1);
          const b = ops.tensor(cpu, randn(size, r, 0.5, 2), shape);
          for (const [x, y] of [
            [a, b],
            [b, a],
          ]) {
            const [ref, fast] = await both(kernels, () => ops.binary(op, x, y));
            assertClose(fast, ref, 2e-6, `${op} [${x.shape}] [${y.shape}]`, 0.1);
          }
          b.dispose();
        }
      a.dispose();
    }),
  );

  test(
    `cpu kernels ${kernels}: RMSNorm (gated both ways, grouped) and LayerNorm equal the reference`,
    seeded(async (r) => {
      const [rows, groups, group] = [randint(r, 1, 9), randint(r, 1, 4), randint(r, 3, 70)];
      const dim = groups * group;
      const x = ops.tensor(cpu, randn(rows * dim, r, -3, 3), [rows, dim]);
      const gate = ops.tensor(cpu, randn(rows * dim, r, -4, 4), [rows, dim]);
      const w = ops.tensor(cpu, randn(dim, r, 0.5, 1.5), [dim]);
      const b = ops.tensor(cpu, randn(dim, r), [dim]);
      const cases = [
        { w: null, opts: { eps: 1e-6 } },
        { w, opts: { eps: 1e-5, groupSize: group } },
        { w, opts: { eps: 1e-5, gate, groupSize: group } },
        { w, opts: { eps: 1e-5, gate, normBeforeGate: true } },
      ];
      for (const [i, c] of cases.entries()) {
        const [ref, fast] = await both(kernels, () => ops.rmsNorm(x, c.w, c.opts));
        assertClose(fast, ref, 1e-5, `rmsNorm case ${i}`, scaleOf(ref));
      }
      for (const [wt, bt] of [
        [w, b],
        [null, null],
      ]) {
        const [ref, fast] = await both(kernels, () => ops.layerNorm(x, wt, bt, 1e-5));
        assertClose(fast, ref, 1e-5, `layerNorm ${wt ? 'affine' : 'plain'}`, scaleOf(ref));
      }
      for (const t of [x, gate, w, b]) t.dispose();
    }),
  );

  test(
    `cpu kernels ${kernels}: the causal conv1d (state in and out, bias, silu) equals the reference`,
    seeded(async (r) => {
      const [batch, C, W] = [2, randint(r, 5, 70), randint(r, 2, 5)];
      for (const len of [1, W - 1, randint(r, 6, 40)]) {
        const x = ops.tensor(cpu, randn(batch * len * C, r, -2, 2), [batch, len, C]);
        const w = ops.tensor(cpu, randn(C * W, r), [C, 1, W]);
        const bias = ops.tensor(cpu, randn(C, r), [C]);
        const state = ops.tensor(cpu, randn(batch * (W - 1) * C, r), [batch, W - 1, C]);
        for (const opts of [{}, { state, silu: true }]) {
          for (const bt of [null, bias]) {
            const [ref, fast] = await both(kernels, () =>
              tidy(() => {
                const o = ops.conv1dCausal(x, w, bt, opts);
                return ops.concat([o.y.reshape([o.y.size]), o.state.reshape([o.state.size])], 0);
              }),
            );
            assertClose(fast, ref, 1e-5, `len ${len} conv1d and state`, scaleOf(ref));
          }
        }
        for (const t of [x, w, bias, state]) t.dispose();
      }
    }),
  );
}
