/**
 * Gradient checks of the fused ops: rmsNorm (plain, gated both ways, grouped, fused with the residual add),
 * layerNorm, rotary, attention (causal, offset queries, GQA, cross-attention, kvLength, masks, segments),
 * causal conv1d (with state, bias, SiLU) and the SSD scan (groups, D, initial and final state); each through
 * the backend's backward kernel and through the composite fallback.
 */
import { after, before, describe, it } from 'node:test';
import { attentionSegmentsAsBatch, useBackwardKernels } from '../../src/autograd/index.js';
import * as ops from '../../src/runtime/ops.js';
import { gradCheck } from './gradcheck.js';
import * as ref from './reference.js';

for (const mode of ['backward kernels', 'composites'] as const)
  describe(mode, () => {
    before(() => useBackwardKernels(mode === 'backward kernels'));
    after(() => useBackwardKernels(true));
    describe(`autograd (${mode}): norms`, () => {
      const S = [3, 5, 6];
      const variants = [
        { name: 'plain', gate: false },
        { name: 'gated, gate first', gate: true, normBeforeGate: false },
        { name: 'gated, norm first', gate: true, normBeforeGate: true },
        { name: 'grouped and gated', gate: true, groupSize: 3 },
      ];
      for (const v of variants)
        it(`rmsNorm ${v.name}`, () =>
          gradCheck({
            inputs: [{ shape: S }, { shape: [6] }, ...(v.gate ? [{ shape: S, lo: -2, hi: 2 }] : [])],
            run: ([x, w, gate]) =>
              ops.rmsNorm(x, w, {
                eps: 1e-5,
                gate,
                normBeforeGate: v.normBeforeGate,
                groupSize: v.groupSize,
              }),
            ref: ([x, w, gate]) =>
              ref.rmsNorm(x, 6, w, {
                eps: 1e-5,
                gate,
                normBeforeGate: v.normBeforeGate,
                groupSize: v.groupSize,
              }),
          }));
      it('addRmsNorm: both the sum and the normed output', () =>
        gradCheck({
          inputs: [{ shape: S }, { shape: S }, { shape: [6] }],
          run: ([x, r, w]) => {
            const { sum, out } = ops.addRmsNorm(x, r, w, { eps: 1e-5 });
            return ops.concat([sum, out], 0);
          },
          ref: ([x, r, w]) => {
            const sum = x.map((v, i) => v + r[i]);
            return [...sum, ...ref.rmsNorm(sum, 6, w, { eps: 1e-5 })];
          },
        }));
      it('layerNorm and addLayerNorm', () =>
        gradCheck({
          inputs: [{ shape: S }, { shape: S }, { shape: [6] }, { shape: [6] }],
          run: ([x, r, w, b]) => {
            const { sum, out } = ops.addLayerNorm(x, r, w, b, 1e-5);
            return ops.concat([ops.layerNorm(x, w, b, 1e-5), sum, out], 0);
          },
          ref: ([x, r, w, b]) => {
            const sum = x.map((v, i) => v + r[i]);
            return [...ref.layerNorm(x, 6, w, b, 1e-5), ...sum, ...ref.layerNorm(sum, 6, w, b, 1e-5)];
          },
        }));
    });

    describe(`autograd (${mode}): rotary`, () => {
      it('rotate-half over the leading dims of each head', () => {
        const [s, rot] = [5, 4];
        const cos = new Float64Array(s * rot);
        const sin = new Float64Array(s * rot);
        for (let t = 0; t < s; t++)
          for (let i = 0; i < rot / 2; i++) {
            const a = t * 10000 ** (-i / (rot / 2));
            for (const j of [i, i + rot / 2]) {
              cos[t * rot + j] = Math.fround(Math.cos(a));
              sin[t * rot + j] = Math.fround(Math.sin(a));
            }
          }
        return gradCheck({
          inputs: [
            { shape: [2, s, 3, 6] },
            { shape: [s, rot], values: cos, grad: false },
            { shape: [s, rot], values: sin, grad: false },
          ],
          run: ([x, c, sn]) => ops.rotary(x, c, sn),
          ref: ([x, c, sn]) => ref.rotary(x, [2, s, 3, 6], c, sn, rot),
        });
      });
    });

    describe(`autograd (${mode}): attention`, () => {
      const cases: {
        name: string;
        sq: number;
        skv: number;
        hq: number;
        hkv: number;
        o: ref.AttnOpts;
        mask?: boolean;
      }[] = [
        { name: 'causal self-attention', sq: 5, skv: 5, hq: 2, hkv: 2, o: { causal: true } },
        {
          name: 'causal GQA with a query offset',
          sq: 3,
          skv: 5,
          hq: 4,
          hkv: 2,
          o: { causal: true, queryOffset: 2 },
        },
        {
          name: 'cross-attention (non-causal, other length)',
          sq: 3,
          skv: 7,
          hq: 3,
          hkv: 1,
          o: { scale: 0.3 },
        },
        {
          name: 'kvLength and an additive mask',
          sq: 3,
          skv: 7,
          hq: 2,
          hkv: 1,
          o: { kvLength: 5 },
          mask: true,
        },
        { name: 'segments', sq: 5, skv: 5, hq: 2, hkv: 2, o: { segments: [0, 2, 5] } },
        // Segments of one length: the composite runs them as a batch of sequences (segmentsAsBatch).
        { name: 'segments of one length, GQA', sq: 6, skv: 6, hq: 2, hkv: 1, o: { segments: [0, 3, 6] } },
      ];
      const check = (c: (typeof cases)[number]) => {
        const [b, d, dv] = [c.o.segments ? 1 : 2, 4, 3];
        const L = c.o.kvLength ?? c.skv;
        return gradCheck({
          inputs: [
            { shape: [b, c.sq, c.hq, d] },
            { shape: [b, c.skv, c.hkv, d] },
            { shape: [b, c.skv, c.hkv, dv] },
            ...(c.mask ? [{ shape: [1, c.sq, L], lo: -2, hi: 0 }] : []),
          ],
          run: ([q, k, v, mask]) => ops.attention(q, k, v, { ...c.o, mask }).out,
          ref: ([q, k, v, mask]) =>
            ref.attention(q, [b, c.sq, c.hq, d], k, [b, c.skv, c.hkv, d], v, dv, { ...c.o, mask }),
        });
      };
      for (const c of cases) it(c.name, () => check(c));
      it('segments of one length through the batched composite instead of the kernel (the A/B switch)', async () => {
        attentionSegmentsAsBatch(true);
        try {
          await check(cases[cases.length - 1]);
        } finally {
          attentionSegmentsAsBatch(false);
        }
      });
    });

    describe(`autograd (${mode}): causal conv1d`, () => {
      for (const withState of [false, true])
        it(`width 4, bias, SiLU${withState ? ', a carried state (and the state out)' : ''}`, () => {
          const [b, l, c, W] = [2, 5, 3, 4];
          return gradCheck({
            inputs: [
              { shape: [b, l, c] },
              { shape: [c, W] },
              { shape: [c] },
              ...(withState ? [{ shape: [b, W - 1, c] }] : []),
            ],
            run: ([x, w, bias, state]) => {
              const r = ops.conv1dCausal(x, w, bias, { state, silu: true });
              return ops.concat([r.y.reshape([-1]), r.state.reshape([-1])], 0);
            },
            ref: ([x, w, bias, state]) => {
              const r = ref.conv1d(x, [b, l, c], w, W, bias, state ?? null, true);
              return [...r.y, ...r.state];
            },
          });
        });
      it('a sequence shorter than the kernel, no bias, weight [C, 1, W]', () =>
        gradCheck({
          inputs: [{ shape: [1, 2, 3] }, { shape: [3, 1, 4] }],
          run: ([x, w]) => {
            const r = ops.conv1dCausal(x, w, null);
            return ops.concat([r.y.reshape([-1]), r.state.reshape([-1])], 0);
          },
          ref: ([x, w]) => {
            const r = ref.conv1d(x, [1, 2, 3], w, 4, null, null, false);
            return [...r.y, ...r.state];
          },
        }));
    });

    describe(`autograd (${mode}): SSD scan`, () => {
      for (const withState of [false, true])
        it(`groups 2 of 4 heads, D${withState ? ', an initial state' : ''}; y and the final state`, () => {
          const [b, L, H, P, G, N] = [2, 7, 4, 3, 2, 5];
          return gradCheck({
            inputs: [
              { shape: [b, L, H, P] },
              { shape: [b, L, H], lo: 0.05, hi: 0.8 },
              { shape: [H], lo: -1.5, hi: -0.2 },
              { shape: [b, L, G, N] },
              { shape: [b, L, G, N] },
              { shape: [H] },
              ...(withState ? [{ shape: [b, H, P, N] }] : []),
            ],
            run: ([x, dt, A, B, C, D, state]) => {
              const r = ops.ssdScan({ x, dt, A, B, C, D, state }, 3);
              return ops.concat([r.y.reshape([-1]), r.state.reshape([-1])], 0);
            },
            ref: ([x, dt, A, B, C, D, state]) => {
              const r = ref.ssd(x, [b, L, H, P], dt, A, B, C, G, N, D, state ?? null);
              return [...r.y, ...r.state];
            },
          });
        });
    });
  });
