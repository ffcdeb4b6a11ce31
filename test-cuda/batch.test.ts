// Batched decoding on the GPU (native/cuda/decode.cu): attentionRows, scatterRows and the fused Mamba-2 step
// of N sequences (and of one, as a lone sequence's step now runs it) against the CPU backend's per-sequence
// loops (its own mambaStepRows and scatterRows, equal to those loops bit for bit), then whole models — a batched step of
// Nemotron-H, Qwen2-VL and Vamba sessions on the GPU equal to the CPU's, and greedy tokens of generations
// decoding together equal to each alone.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { generateAll } from '../src/generate/generate.js';
import type { CausalLM } from '../src/generate/types.js';
import { NemotronHForCausalLM } from '../src/models/nemotron_h/model.js';
import { Qwen2VL } from '../src/models/qwen2vl/model.js';
import { Vamba } from '../src/models/vamba/model.js';
import type { Backend } from '../src/runtime/backend.js';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { relErr } from '../test/helpers.js';
import { FIXTURES, fixtureInputs, readArrays } from '../test/models/qwen2vl-fixtures.js';
import { readReference, VAMBA_FIXTURES } from '../test/models/vamba-fixtures.js';
import { assertParity, cpu, FLASH_BF16, gpu, pair, TOL, values } from './helpers.js';

for (const dtype of ['f32', 'bf16'] as const)
  describe(`batched decode kernels (${dtype})`, () => {
    for (const [hq, hkv, d] of [
      [8, 2, 64],
      [7, 1, 128],
      [4, 4, 80],
    ])
      test(`attentionRows: ${hq}/${hkv} heads of ${d}, lengths 1 … 3000, shared buffers and prefixes`, async () => {
        const lengths = [1, 37, 300, 3000, 41];
        const caps = [4, 64, 300, 3100, 64];
        const bufs = caps.map((cap) => ({
          k: pair(values(cap * hkv * d), [1, cap, hkv, d], dtype),
          v: pair(values(cap * hkv * d), [1, cap, hkv, d], dtype),
        }));
        bufs[4] = bufs[1]; // two sequences reading one buffer (a shared prefix) to different lengths
        const [qg, qc] = pair(values(lengths.length * hq * d), [lengths.length, hq, d], dtype);
        // Rows 1 and 4 continue a shared prefix (row 3's first 2000 keys) with keys of their own.
        const prefixOf = (i: number, side: 0 | 1) =>
          i === 1 || i === 4 ? { k: bufs[3].k[side], v: bufs[3].v[side], length: 2000 } : null;
        const kvs = (side: 0 | 1) =>
          bufs.map((b, i) => ({ k: b.k[side], v: b.v[side], length: lengths[i], prefix: prefixOf(i, side) }));
        const got = ops.attentionRows(qg, kvs(0));
        const want = ops.attentionRows(qc, kvs(1));
        // Judged as test-cuda/attention.test.ts judges attention: split-key sums over 3000 keys round differently.
        if (dtype === 'f32') await assertParity(got, want, 1e-4, 'attentionRows', 1e-2);
        // bf16: keys several rows read run on flash_fwd's tiles, judged as flash attention is.
        else await assertParity(got, want, FLASH_BF16.tol, 'attentionRows', FLASH_BF16.floor);
      });

    test('scatterRows: each row lands in its own buffer at its own row', async () => {
      const rows = 4;
      const row = 2 * 64;
      const dsts = [8, 3, 8, 20].map((cap) => pair(values(cap * row), [1, cap, 2, 64], dtype));
      const at = [0, 2, 7, 19];
      const [xg, xc] = pair(values(rows * row), [rows, row], dtype);
      ops.scatterRows(
        xg,
        dsts.map((d, i) => ({ dst: d[0], at: at[i] })),
      );
      ops.scatterRows(
        xc,
        dsts.map((d, i) => ({ dst: d[1], at: at[i] })),
      );
      for (const [g, c] of dsts) await assertParity(g, c, 0, 'scatterRows');
    });
  });

for (const dtype of ['f32', 'bf16'] as const)
  for (const rows of [1, 3])
    test(`mambaStepRows (${dtype}, ${rows} row${rows > 1 ? 's' : ''}, inputs as views of one packed row, dt clamped) equals the CPU's`, async () => {
      // As a one-token step feeds it: x, B‖C and dt are views of in_proj's packed output row.
      const [heads, headDim, groups, dState, width] = [8, 16, 2, 32, 4];
      const dInner = heads * headDim;
      const gn = groups * dState;
      const convDim = dInner + 2 * gn;
      const packed = pair(values(rows * (convDim + heads), -1, 1), [rows, convDim + heads], dtype);
      const parts = packed.map((p) =>
        rows === 1
          ? [
              p
                .reshape([convDim + heads])
                .narrow(0, dInner)
                .reshape([1, dInner]),
              p
                .reshape([convDim + heads])
                .narrow(dInner, convDim)
                .reshape([1, 2 * gn]),
              p
                .reshape([convDim + heads])
                .narrow(convDim, convDim + heads)
                .reshape([1, heads]),
            ]
          : ops.split(p, -1, [dInner, 2 * gn, heads]),
      );
      const weight = pair(values(convDim * width, -0.5, 0.5), [convDim, 1, width], dtype);
      const bias = pair(values(convDim, -0.5, 0.5), [convDim], dtype);
      const dtBias = pair(values(heads, -1, 1), [heads], 'f32');
      const A = pair(values(heads, -2, -0.1), [heads], 'f32');
      const D = pair(values(heads), [heads], dtype);
      const conv = Array.from({ length: rows }, () =>
        pair(values((width - 1) * convDim, -1, 1), [1, width - 1, convDim], dtype),
      );
      const ssm = Array.from({ length: rows }, () =>
        pair(values(heads * headDim * dState, -1, 1), [1, heads, headDim, dState], 'f32'),
      );
      const states = [0, 1].map((b) => conv.map((c, i) => ({ conv: c[b], ssm: ssm[i][b] })));
      const run = (b: number) =>
        ops.mambaStepRows({
          x: parts[b][0],
          bc: parts[b][1],
          dt: parts[b][2],
          conv: { weight: weight[b], bias: bias[b] },
          dtBias: dtBias[b],
          A: A[b],
          D: D[b],
          dtLimit: [0.05, 1.5],
          headDim,
          groups,
          states: states[b],
        });
      const tol = dtype === 'f32' ? 1e-4 : 2 * TOL.bf16;
      await assertParity(run(0), run(1), tol, 'mambaStepRows y');
      for (let i = 0; i < rows; i++) {
        await assertParity(states[0][i].conv, states[1][i].conv, 0, `conv state ${i}`);
        await assertParity(states[0][i].ssm, states[1][i].ssm, tol, `ssm state ${i}`);
      }
    });

async function rowsOf(t: Tensor): Promise<number[][]> {
  const v = Array.from(await t.data());
  const n = t.shape[t.rank - 1];
  t.dispose();
  return Array.from({ length: v.length / n }, (_, i) => v.slice(i * n, (i + 1) * n));
}

/** Logits of one batched step of sessions prefilled with `prompts`, fed `tokens`. */
async function batchedStep<I>(
  make: (i: number) => CausalLM<I> & Disposable,
  prompts: I[],
  tokens: number[],
): Promise<number[][]> {
  const sessions = prompts.map((_, i) => make(i));
  try {
    for (const [i, s] of sessions.entries()) (await s.prefill(prompts[i])).dispose();
    return await rowsOf(sessions[0].stepMany!(sessions, tokens));
  } finally {
    for (const s of sessions) s[Symbol.dispose]();
  }
}

const MODEL_TOL: Record<string, number> = { f32: 1e-4, bf16: 5e-2 };

function close(got: number[][], want: number[][], dtype: DType, what: string) {
  assert.equal(got.length, want.length);
  got.forEach((g, i) => {
    const err = relErr(g, want[i]);
    assert.ok(err <= MODEL_TOL[dtype], `${what} row ${i}: relative error ${err.toExponential(2)}`);
  });
}

const greedyTogether = async <I>(make: (i: number) => CausalLM<I> & Disposable, prompts: I[]) => {
  const run = async (i: number, batch: boolean) => {
    using s = make(i);
    return (await generateAll(s, prompts[i], { maxNewTokens: 8, stopTokens: [], batch })).tokens;
  };
  const alone: number[][] = [];
  for (let i = 0; i < prompts.length; i++) alone.push(await run(i, false));
  assert.deepEqual(await Promise.all(prompts.map((_, i) => run(i, true))), alone);
};

describe('batched decoding of whole models on the GPU', () => {
  const nemotron = 'test/fixtures/nemotron_h/nano-like';
  const prompts = [[5, 17, 230, 41, 9], [88], [301, 12, 12, 90, 7, 66, 250, 3, 19], [44, 45, 46]];
  const tokens = [3, 99, 250, 7];

  for (const dtype of ['f32', 'bf16'] as const)
    test(`Nemotron-H (${dtype}): one fused step of four sessions equals the CPU's`, async () => {
      const load = (backend: Backend) =>
        NemotronHForCausalLM.load(nemotron, { backend, dtype: backend === cpu ? 'f32' : dtype });
      using g = await load(gpu);
      using c = await load(cpu);
      const got = await batchedStep(() => g.session({ capacity: 4 }), prompts, tokens);
      const want = await batchedStep(() => c.session({ capacity: 4 }), prompts, tokens);
      close(got, want, dtype, 'Nemotron-H');
      if (dtype === 'f32') await greedyTogether(() => g.session({ capacity: 4 }), prompts);
    });

  test('Qwen2-VL (f32): questions continuing one video prefix (segmented caches) equal the CPU', async () => {
    const meta = JSON.parse(readFileSync(join(FIXTURES, 'tiny-a', 'reference.json'), 'utf8'));
    const proc = await readArrays(join(FIXTURES, 'processor', 'outputs.safetensors'));
    const ids: number[] = meta.prompts.video.input_ids;
    const video = fixtureInputs('video', ids, proc);
    const run = async (backend: Backend) => {
      using m = await Qwen2VL.load(join(FIXTURES, 'tiny-a'), { backend, dtype: 'f32' });
      const { video_token_id: pad, vision_end_token_id: end } = m.config;
      const cut = ids.lastIndexOf(pad) + 1 + (ids[ids.lastIndexOf(pad) + 1] === end ? 1 : 0);
      using embeds = m.encodeVision(video.pixelValuesVideos!, video.videoGridThw!);
      const withVideo = (inputIds: number[]) => ({
        ...video,
        inputIds,
        pixelValuesVideos: null,
        videoEmbeds: embeds,
      });
      using prefix = m.prefillPrefix(withVideo(ids.slice(0, cut)), { room: 4 });
      const qs = [[12], [95, 7], [300, 41, 286]].map((q) => withVideo([...ids.slice(0, cut), ...q]));
      const got = await batchedStep(() => m.session({ capacity: 8, prefix }), qs, [3, 99, 250]);
      if (backend === gpu) await greedyTogether(() => m.session({ capacity: 8, prefix }), qs);
      return got;
    };
    close(await run(gpu), await run(cpu), 'f32', 'Qwen2-VL');
  });

  test('Vamba (f32): questions on two videos in one step equal the CPU; greedy together equals alone', async () => {
    const ref = await readReference('tiny-a');
    const load = (backend: Backend) => Vamba.load(join(VAMBA_FIXTURES, 'tiny-a'), { backend, dtype: 'f32' });
    using g = await load(gpu);
    using c = await load(cpu);
    const videos = (m: Vamba) => [
      m.encodeVideo(ref.pixelValues, ref.grid),
      m.encodeVideo(
        ref.pixelValues.map((v) => -0.5 * v),
        ref.grid,
      ),
    ];
    const [vg, vc] = [videos(g), videos(c)];
    try {
      const qs = [ref.inputIds, ref.inputIds.slice(0, 3), [...ref.inputIds, 40], [7]];
      const got = await batchedStep((i) => g.session(vg[i % 2], { capacity: 4 }), qs, tokens);
      const want = await batchedStep((i) => c.session(vc[i % 2], { capacity: 4 }), qs, tokens);
      close(got, want, 'f32', 'Vamba');
      await greedyTogether((i) => g.session(vg[i % 2], { capacity: 4 }), qs);
    } finally {
      for (const v of [...vg, ...vc]) v[Symbol.dispose]();
    }
  });
});
