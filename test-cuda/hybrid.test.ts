// The hybrid blocks on the GPU: every Mamba-2 variant (test/nn/mamba2-cases.ts) against the CPU backend in f32,
// a prefill then single steps through a cache layer, and Qwen2-VL questions continued from a prefilled video
// prefix against a full prefill of the whole prompt (different kernels on each side: f32 within 1e-4, as the
// SSD and model parity tests; bf16 within the models' bf16 bound).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Qwen2VL, type Qwen2VLInputs } from '../src/models/qwen2vl/model.js';
import { HybridCache } from '../src/nn/cache.js';
import * as ops from '../src/runtime/ops.js';
import { relErr } from '../test/helpers.js';
import { FIXTURES, fixtureInputs, readArrays, readJson } from '../test/models/qwen2vl-fixtures.js';
import { build, D_MODEL, randomParams, variants } from '../test/nn/mamba2-cases.js';
import { cpu, gpu, values } from './helpers.js';

describe('Mamba-2 variants on the GPU vs the CPU backend (f32)', () => {
  for (const [i, [name, c]] of variants.entries())
    test(name, async () => {
      const host = randomParams(c, 300 + i);
      using g = build(gpu, c, host);
      using r = build(cpu, c, host);
      const len = 37;
      const u = values(len * D_MODEL, -1, 1);
      const want = await r.forward(ops.tensor(cpu, u, [1, len, D_MODEL])).data();
      const got = await g.forward(ops.tensor(gpu, u, [1, len, D_MODEL])).data();
      assert.ok(relErr(got, want) <= 1e-4, `${name}: ${relErr(got, want).toExponential(2)}`);
      if (c.bidirectional) return;
      using cache = new HybridCache(gpu, { layers: [{ kind: 'mamba' }], dtype: 'f32' });
      const x = ops.tensor(gpu, u, [1, len, D_MODEL]);
      const steps = [...(await g.forward(ops.slice(x, 1, 0, 30), { cache, layer: 0 }).data())];
      cache.commit(30);
      for (let t = 30; t < len; t++) {
        steps.push(...(await g.forward(ops.slice(x, 1, t, t + 1), { cache, layer: 0 }).data()));
        cache.commit(1);
      }
      assert.ok(
        relErr(steps, want) <= 1e-4,
        `${name} prefill + steps: ${relErr(steps, want).toExponential(2)}`,
      );
    });
});

for (const dtype of ['f32', 'bf16'] as const)
  test(`Qwen2-VL tiny-a ${dtype} on the GPU: a question from the video prefix equals a full prefill`, async () => {
    using model = await Qwen2VL.load(join(FIXTURES, 'tiny-a'), { backend: gpu, dtype });
    const meta = await readJson(join(FIXTURES, 'tiny-a', 'reference.json'));
    const proc = await readArrays(join(FIXTURES, 'processor', 'outputs.safetensors'));
    const ids: number[] = meta.prompts.video.input_ids;
    const video = fixtureInputs('video', ids, proc);
    const cut = ids.lastIndexOf(model.config.video_token_id) + 2; // through <|vision_end|>
    using embeds = model.encodeVision(video.pixelValuesVideos!, video.videoGridThw!);
    const withVideo = (inputIds: number[]): Qwen2VLInputs => ({
      ...video,
      inputIds,
      pixelValuesVideos: null,
      videoEmbeds: embeds,
    });
    using prefix = model.prefillPrefix(withVideo(ids.slice(0, cut)), { room: 16 });
    for (const q of [ids, [...ids.slice(0, cut), 95, 7, 300]]) {
      const full = model.forward(withVideo(q));
      const want = await ops.slice(full, 0, q.length - 1, q.length).data();
      using s = model.session({ capacity: q.length + 4, prefix });
      const got = await s.prefill(withVideo(q)).data();
      const tol = dtype === 'f32' ? 1e-4 : 5e-2;
      assert.ok(relErr(got, want) <= tol, `${dtype}: ${relErr(got, want).toExponential(2)}`);
    }
  });
