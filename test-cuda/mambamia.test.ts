// MambaMia and TSTAR on the GPU: the compressor fixtures made with the derivative's MambaMia2Model
// (test/fixtures/mambamia) and the tiny TSTAR-MambaMia trainer fixture (test/fixtures/needle_mambamia), in f32 and
// bf16 within the models' bounds; TSTAR with a SigLIP tower and Nemotron-H (random tiny weights) against the CPU
// backend; and the token reductions (uniform, ToMe) on CUDA against the CPU backend.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { parseMambaMiaConfig } from '../src/models/mambamia/config.js';
import { loadMambaMiaCompressor } from '../src/models/mambamia/weights.js';
import { tokenReductions } from '../src/models/reduction.js';
import { parseTstarConfig } from '../src/models/tstar/config.js';
import { Tstar } from '../src/models/tstar/model.js';
import { ParamStore } from '../src/nn/params.js';
import type { Backend } from '../src/runtime/backend.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { randn, relErr, rng } from '../test/helpers.js';
import { randomHost, tinySiglip, tinyTstarJson } from '../test/models/tiny-tstar.js';
import { cpu, gpu, randomPair } from './helpers.js';

const FIXTURES = join(import.meta.dirname, '..', 'test', 'fixtures');
const TOL: Record<string, number> = { f32: 1e-4, bf16: 5e-2 };

async function rows(t: Tensor): Promise<number[]> {
  try {
    return Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

/** A tensor's values as f32 (it is disposed). */
async function f32Rows(t: Tensor): Promise<number[]> {
  const f = ops.cast(t, 'f32');
  if (f !== t) t.dispose();
  return rows(f);
}

async function reference(dir: string, name: string): Promise<number[]> {
  await using f = await SafetensorsFile.open(join(dir, 'reference.safetensors'));
  return rows(await f.loadTensor(cpu, name, { dtype: 'f32' }));
}

for (const dtype of ['f32', 'bf16'] as const) {
  describe(`MambaMia compressor fixtures on the GPU (${dtype})`, () => {
    const dir = join(FIXTURES, 'mambamia');
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    for (const name of Object.keys(manifest.cases))
      test(name, async () => {
        const c = parseMambaMiaConfig(JSON.parse(readFileSync(join(dir, name, 'config.json'), 'utf8')));
        await using w = await SafetensorsFile.open(join(dir, name, 'model.safetensors'));
        using m = await loadMambaMiaCompressor(w, c, gpu, dtype, name);
        await using f = await SafetensorsFile.open(join(dir, name, 'reference.safetensors'));
        using features = await f.loadTensor(gpu, 'features', { dtype });
        const e = relErr(await rows(m.forward(features)), await reference(join(dir, name), 'output'));
        assert.ok(e <= TOL[dtype], `relative error ${e.toExponential(2)}`);
      });
  });

  test(`the tiny TSTAR-MambaMia trainer fixture on the GPU (${dtype})`, async () => {
    const dir = join(FIXTURES, 'needle_mambamia');
    using model = await Tstar.load(dir, gpu, dtype);
    const pixels = Float32Array.from(await reference(dir, 'pixel_values'));
    using vision = model.encodeVision(pixels, [3, 4, 4]);
    const e = relErr(await rows(model.compress(vision, [3, 4, 4])), await reference(dir, 'video_tokens'));
    assert.ok(e <= TOL[dtype], `compressed tokens: relative error ${e.toExponential(2)}`);
  });
}

for (const layout of ['hf', 'timm'] as const)
  test(`TSTAR with a SigLIP tower (${layout}) and Nemotron-H: CUDA against the CPU`, async () => {
    const config = parseTstarConfig({
      ...tinyTstarJson('nemotron_h'),
      vision_config: tinySiglip(layout),
      video_token_id: 6,
    });
    const host = randomHost(config, 4);
    const load = (be: Backend, dtype: 'f32' | 'bf16') =>
      Tstar.fromParams(
        config,
        new ParamStore(
          [...host].map(([n, h]): [string, Tensor] => [n, ops.tensor(be, h.values, h.shape, dtype)]),
        ),
        be,
        dtype,
      );
    const px = randn(4 * 3 * 32 * 32, rng(9), -1, 1);
    const run = async (be: Backend, dtype: 'f32' | 'bf16') => {
      using model = load(be, dtype);
      using pixels = ops.tensor(be, px, [4, 3, 32, 32]);
      using tokens = model.encodeFrames(pixels);
      const compressed = model.compressGroups(tokens);
      using session = model.session(64);
      const ids = [1, 2, 3, ...new Array(compressed.shape[0]).fill(6), 4, 5];
      const logits = await f32Rows(await session.prefill({ ids, video: compressed }));
      return { compressed: await f32Rows(compressed), logits };
    };
    // f32 against the CPU backend. bf16 drifts by ~9e-2 from f32 through the 3 + 2 + 10 random blocks on
    // either backend (the model's own rounding, not the kernels'), and the two backends' roundings part by
    // as much: the GPU's bf16 must be as close to the f32 result as the CPU's bf16 is (within 2×, or TOL).
    const exact = await run(cpu, 'f32');
    const got32 = await run(gpu, 'f32');
    const [cpu16, gpu16] = [await run(cpu, 'bf16'), await run(gpu, 'bf16')];
    for (const k of ['compressed', 'logits'] as const) {
      const e = relErr(got32[k], exact[k]);
      assert.ok(e <= TOL.f32, `f32 ${k}: relative error ${e.toExponential(2)}`);
      const [eg, ec] = [relErr(gpu16[k], exact[k]), relErr(cpu16[k], exact[k])];
      assert.ok(
        eg <= Math.max(TOL.bf16, 2 * ec),
        `bf16 ${k}: GPU error ${eg.toExponential(2)}, CPU error ${ec.toExponential(2)} (against f32)`,
      );
    }
  });

describe('token reductions on the GPU', () => {
  for (const name of ['uniform', 'tome'])
    test(name, async () => {
      const r = tokenReductions().find((x) => x.name === name)!;
      const [g, c] = randomPair([3, 12, 32]);
      try {
        const a = await r.reduce!(g, 0.5);
        const b = await r.reduce!(c, 0.5);
        assert.deepEqual(a.source, b.source);
        const e = relErr(await rows(a.tokens), await rows(b.tokens));
        assert.ok(e <= 1e-5, `relative error ${e.toExponential(2)}`);
      } finally {
        g.dispose();
        c.dispose();
      }
    });
});
