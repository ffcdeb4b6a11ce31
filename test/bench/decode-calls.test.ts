/**
 * Backend calls per decoded token (each a GPU kernel launch crossing JavaScript and Node-API): bounds for the
 * tiny Nemotron-H, Vamba and Qwen2-VL of bench/decode_calls.ts, per token and per layer kind, so a change that
 * adds launches to a decode step fails here. Then the fused paths that make these counts against what they
 * replace: the CPU's one-call Mamba-2 step against the op-by-op step (conv1d, dt, ssmStep) bit for bit, the
 * whole Nemotron-H decode with and without it, one packed in_proj GEMV against its four parts, rotary in place
 * against rotary into a new tensor, and the CPU's scatterRows (one token's k‖v in one call) against writeSlice.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countCalls } from '../../bench/backend-calls.js';
import { nemotronHCalls, qwen2vlCalls, vambaCalls } from '../../bench/decode_calls.js';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { NemotronHForCausalLM } from '../../src/models/nemotron_h/model.js';
import { Linear } from '../../src/nn/linear.js';
import { mamba2Config } from '../../src/nn/mamba2.js';
import type { Backend } from '../../src/runtime/backend.js';
import type { DType } from '../../src/runtime/dtype.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { randn, rng } from '../helpers.js';
import { build, randomParams } from '../nn/mamba2-cases.js';

const be = cpuBackend();

/** The counts reached (docs/runtime.md, "Launches per decoded token"); before this work 136, 52 and 82. */
const BOUNDS = {
  nemotron: { total: 50, perLayer: { mamba2: 5, attention: 5, mlp: 4 } },
  qwen2vl: { total: 48, perLayer: { qwen2: 10 } },
  vamba: { total: 60, perLayer: { vamba: 13 } },
};

describe('backend calls per decoded token', () => {
  for (const [name, measure] of [
    ['nemotron', nemotronHCalls],
    ['qwen2vl', qwen2vlCalls],
    ['vamba', vambaCalls],
  ] as const)
    it(`${name}: at most ${BOUNDS[name].total} per token`, async () => {
      const r = await measure(be);
      const bound = BOUNDS[name];
      assert.ok(
        r.total <= bound.total,
        `${r.total} calls per token (bound ${bound.total}): ${JSON.stringify(r.opsByPart)}`,
      );
      for (const [kind, n] of Object.entries(bound.perLayer))
        assert.ok(r.perLayer[kind] <= n, `${kind}: ${r.perLayer[kind]} calls per layer (bound ${n})`);
      assert.ok(r.logits.every(Number.isFinite));
    });

  it('the counter counts each kernel call once and puts the backend back as it was', async () => {
    const before = Object.getOwnPropertyDescriptors(be);
    const x = ops.tensor(be, [1, -2, 3], [3], 'f32');
    const r = await countCalls(be, () => {
      const y = ops.add(ops.relu2(x), x); // [2, -2, 12]
      return ops.matmul(y.reshape([1, 3]), y.reshape([3, 1]));
    });
    assert.deepEqual(r.counts, { unary: 1, 'unary:relu2': 1, binary: 1, 'binary:add': 1, matmul: 1 });
    assert.equal(r.total, 3);
    assert.deepEqual(Object.getOwnPropertyDescriptors(be), before);
    assert.deepEqual(Array.from(await r.result.data()), [4 + 4 + 144]);
  });
});

/** The CPU backend without its fused Mamba-2 step: models then take the op-by-op step. */
const opByOp = new Proxy(be, {
  get(target, key) {
    if (key === 'mambaStepRows') return undefined;
    const v = Reflect.get(target, key, target);
    return typeof v === 'function' ? v.bind(target) : v;
  },
}) as Backend;

const data = async (t: Tensor) => {
  try {
    return Array.from(await t.data());
  } finally {
    t.dispose();
  }
};

describe('the fused decode paths equal the ones they replace', () => {
  for (const dtype of ['f32', 'bf16'] as const)
    for (const limit of [[0, Number.POSITIVE_INFINITY] as const, [0.05, 0.4] as const])
      it(`mambaStepRows (${dtype}, dt limit ${limit.join('…')}) equals conv1d + dt + ssmStep, bit for bit`, async () => {
        const r = rng();
        const [rows, heads, headDim, groups, dState, width] = [3, 6, 4, 3, 5, 4];
        const dInner = heads * headDim;
        const gn = groups * dState;
        const convDim = dInner + 2 * gn;
        const t = (shape: number[], dt: DType = dtype, lo = -1, hi = 1) =>
          ops.tensor(
            be,
            randn(
              shape.reduce((a, b) => a * b, 1),
              r,
              lo,
              hi,
            ),
            shape,
            dt,
          );
        const [x, bc, dtRaw] = [t([rows, dInner]), t([rows, 2 * gn]), t([rows, heads], dtype, -3, 2)];
        const conv = { weight: t([convDim, 1, width]), bias: t([convDim]) };
        const [dtBias, A, D] = [t([heads], 'f32'), t([heads], 'f32', -2, -0.1), t([heads])];
        const fresh = () =>
          Array.from({ length: rows }, () => ({
            conv: t([1, width - 1, convDim]),
            ssm: t([1, heads, headDim, dState], 'f32'),
          }));
        const fused = fresh();
        const split = fused.map((s) => ({ conv: ops.cast(s.conv, dtype), ssm: ops.cast(s.ssm, 'f32') }));
        const y = ops.mambaStepRows({
          x,
          bc,
          dt: dtRaw,
          conv,
          dtBias,
          A,
          D,
          dtLimit: limit,
          headDim,
          groups,
          states: fused,
        });
        // The op-by-op step, one sequence at a time.
        const w = conv.weight.reshape([convDim, width]);
        const want: number[] = [];
        for (let i = 0; i < rows; i++) {
          const row = (v: Tensor) => v.narrow(i, i + 1).reshape([1, 1, v.shape[1]]);
          const input = ops.concat([row(x), row(bc)], -1);
          const c = ops.conv1dCausal(input, w, conv.bias, { state: split[i].conv, silu: true });
          ops.writeSlice(split[i].conv, c.state, 1, 0);
          let dt = ops.softplus(ops.add(ops.cast(row(dtRaw), 'f32'), dtBias));
          if (limit[0] > 0) dt = ops.maximum(dt, ops.full(be, [1], limit[0]));
          if (limit[1] < Number.POSITIVE_INFINITY) dt = ops.minimum(dt, ops.full(be, [1], limit[1]));
          const [cx, B, C] = ops.split(c.y, -1, [dInner, gn, gn]);
          const yi = ops.ssmStep({
            x: cx.reshape([1, heads, headDim]),
            dt: dt.reshape([1, heads]),
            A,
            B: B.reshape([1, groups, dState]),
            C: C.reshape([1, groups, dState]),
            D,
            state: split[i].ssm,
          });
          want.push(...(await data(yi)));
        }
        assert.deepEqual(await data(y), want);
        for (let i = 0; i < rows; i++) {
          assert.deepEqual(await data(fused[i].conv), await data(split[i].conv), `conv state ${i}`);
          assert.deepEqual(await data(fused[i].ssm), await data(split[i].ssm), `ssm state ${i}`);
        }
      });

  for (const dtype of ['f32', 'bf16'] as const)
    it(`Nemotron-H (${dtype}): decoding through the fused step gives the op-by-op step's logits exactly`, async () => {
      const run = async (backend: Backend) => {
        using m = await NemotronHForCausalLM.load('test/fixtures/nemotron_h/nano-like', { backend, dtype });
        using s = m.session({ capacity: 16 });
        s.prefill([301, 5, 17, 9]).dispose();
        const out: number[] = [];
        for (const token of [12, 7, 99, 3]) out.push(...(await data(s.step(token))));
        return out;
      };
      assert.deepEqual(await run(be), await run(opByOp));
    });

  for (const dtype of ['f32', 'bf16'] as const)
    it(`one packed GEMV (${dtype}) equals the in_proj parts' four, bit for bit`, async () => {
      const r = rng();
      const [dModel, out] = [24, 70];
      using w = new Linear(ops.tensor(be, randn(out * dModel, r), [out, dModel], dtype));
      const u = ops.tensor(be, randn(dModel, r), [1, 1, dModel], dtype);
      const all = await data(w.forward(u));
      const parts: number[] = [];
      for (const [a, b] of [
        [0, 16],
        [16, 32],
        [32, 64],
        [64, 70],
      ]) {
        using p = w.rows(a, b);
        parts.push(...(await data(p.forward(u))));
      }
      assert.deepEqual(all, parts);
    });

  it('a Mamba-2 step of two sequences in one state (views of its rows) equals the op-by-op step', async () => {
    const c = mamba2Config(16, { dInner: 24, dState: 6, headDim: 6, nGroups: 2, dtLimit: [0.01, 0.5] });
    const host = randomParams(c, 7);
    const u = randn(3 * 2 * 16, rng());
    const run = async (backend: Backend) => {
      using mixer = build(backend, c, host);
      const state = mixer.initialState(2);
      const out: number[] = [];
      for (let t = 0; t < 3; t++)
        out.push(
          ...(await data(mixer.step(ops.tensor(backend, u.subarray(t * 32, (t + 1) * 32), [2, 16]), state))),
        );
      out.push(...(await data(state.conv)), ...(await data(state.ssm)));
      return out;
    };
    assert.deepEqual(await run(be), await run(opByOp));
  });

  for (const dtype of ['f32', 'bf16'] as const)
    it(`rotary in place (${dtype}) equals rotary into a new tensor`, async () => {
      const r = rng();
      const x = ops.tensor(be, randn(2 * 5 * 8, r), [1, 2, 5, 8], dtype);
      const cos = ops.tensor(be, randn(2 * 6, r), [2, 6], 'f32');
      const sin = ops.tensor(be, randn(2 * 6, r), [2, 6], 'f32');
      const want = await data(ops.rotary(x, cos, sin));
      assert.equal(ops.rotary(x, cos, sin, { out: x }), x);
      assert.deepEqual(await data(x), want);
    });

  it("the CPU's scatterRows writes each row where writeSlice does", async () => {
    const r = rng();
    const kv = ops.tensor(be, randn(2 * 6, r), [2, 6], 'bf16');
    const cache = () => [0, 1].map(() => ops.tensor(be, randn(4 * 6, r), [1, 4, 3, 2], 'bf16'));
    const [a, b] = [cache(), cache()];
    for (const [i, t] of b.entries()) ops.writeSlice(a[i], t, 0, 0);
    ops.scatterRows(kv, [
      { dst: a[0], at: 2 },
      { dst: a[1], at: 2 },
    ]);
    for (const [i, t] of b.entries()) ops.writeSlice(t, kv.narrow(i, i + 1).reshape([1, 1, 3, 2]), 1, 2);
    for (let i = 0; i < 2; i++) assert.deepEqual(await data(a[i]), await data(b[i]));
  });
});
