// TimeViper on the GPU: the official-module fixtures (test/fixtures/timeviper, checked on the CPU by
// test/models/timeviper-parity.test.ts) through the CUDA backend in f32 — SigLIP (timm and HF layouts), ToMe,
// the projected frame tokens, prefill logits and greedy tokens with uni/attn drops and TransV — and a SigLIP
// block at so400m's head size (72) against the CPU backend.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Checkpoint } from '../src/io/checkpoint.js';
import { RandomWeights } from '../src/io/random-weights.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import {
  parseSiglipVisionConfig,
  resolveBlock,
  SiglipVision,
  siglipSpecs,
  so400m,
} from '../src/models/siglip/index.js';
import { readTimeViperConfig } from '../src/models/timeviper/config.js';
import { TimeViperModel } from '../src/models/timeviper/model.js';
import { loadTimeViperParams } from '../src/models/timeviper/weights.js';
import { ParamStore } from '../src/nn/params.js';
import { tomeMerge } from '../src/nn/tome.js';
import * as ops from '../src/runtime/ops.js';
import { relErr } from '../test/helpers.js';
import { recordedGreedy } from '../test/models/parity.js';
import { cpu, gpu } from './helpers.js';

const DIR = join(import.meta.dirname, '..', 'test', 'fixtures', 'timeviper');
const TOL = 1e-4;

describe('TimeViper on CUDA (f32) against the official modules', () => {
  test('SigLIP features, timm and HF layouts', async () => {
    await using f = await SafetensorsFile.open(join(DIR, 'siglip.safetensors'));
    const configs = JSON.parse(readFileSync(join(DIR, 'siglip.json'), 'utf8'));
    for (const layout of ['timm', 'hf'] as const) {
      const c = parseSiglipVisionConfig(configs[layout], layout);
      const block = resolveBlock(c, configs.feature_block);
      const tensors = new Map();
      for (const s of siglipSpecs(c, layout, block, `${layout}.`))
        tensors.set(s.name, await f.loadTensor(gpu, s.name, { dtype: 'f32' }));
      using model = SiglipVision.load(new ParamStore(tensors), c, layout, block, `${layout}.`);
      using pixels = await f.loadTensor(gpu, 'pixels', { dtype: 'f32' });
      using got = model.forward(pixels);
      using want = await f.loadTensor(gpu, `${layout}_features`, { dtype: 'f32' });
      assert.ok(relErr(await got.data(), await want.data()) <= TOL, layout);
    }
  });

  test('a SigLIP block at so400m size (head dim 72, 729 tokens) against the CPU backend', async () => {
    const c = { ...so400m('timm'), num_hidden_layers: 2 };
    const specs = siglipSpecs(c, 'timm', 0);
    const load = async (backend: typeof gpu) => {
      using source = new RandomWeights(specs, { seed: 5, std: 0.05 });
      const tensors = new Map();
      for (const s of specs) tensors.set(s.name, await source.loadTensor(backend, s.name, { dtype: 'f32' }));
      return SiglipVision.load(new ParamStore(tensors), c, 'timm', 0);
    };
    const pixels = Float32Array.from({ length: 2 * 3 * 384 * 384 }, (_, i) => Math.sin(i * 0.37));
    const run = async (backend: typeof gpu) => {
      using model = await load(backend);
      using x = ops.tensor(backend, pixels, [2, 3, 384, 384]);
      using y = model.forward(x);
      return Float32Array.from(await y.data());
    };
    assert.ok(relErr(await run(gpu), await run(cpu)) <= TOL);
  });

  test('ToMe: the official merge of a 729-token grid', async () => {
    await using f = await SafetensorsFile.open(join(DIR, 'tome.safetensors'));
    using x = await f.loadTensor(gpu, 'grid729.x', { dtype: 'f32' });
    using got = await tomeMerge(x, 16);
    using want = await f.loadTensor(gpu, 'grid729.merged', { dtype: 'f32' });
    assert.ok(relErr(await got.data(), await want.data()) <= TOL);
  });

  for (const name of ['plain', 'drop', 'transv']) {
    test(`${name}: frame tokens, prefill logits, greedy tokens`, async () => {
      const dir = join(DIR, name);
      await using ref = await SafetensorsFile.open(join(dir, 'reference.safetensors'));
      const config = await readTimeViperConfig(dir);
      await using ck = await Checkpoint.open(dir);
      using model = await TimeViperModel.fromParams(
        config,
        await loadTimeViperParams(ck, config, gpu, 'f32', dir),
      );
      using pixels = await ref.loadTensor(gpu, 'pixels', { dtype: 'f32' });
      using visual = await model.encode(pixels);
      using wantVisual = await ref.loadTensor(gpu, 'visual', { dtype: 'f32' });
      assert.ok(relErr(await visual.data(), await wantVisual.data()) <= TOL, 'visual');
      const ids = Array.from(await (await ref.loadTensor(gpu, 'input_ids')).data());
      const tokens = Array.from(await (await ref.loadTensor(gpu, 'greedy_tokens')).data());
      using prefill = await ref.loadTensor(gpu, 'prefill_logits', { dtype: 'f32' });
      using session = model.session();
      const out = await recordedGreedy(session, { ids, visual }, { maxNewTokens: tokens.length });
      assert.deepEqual(out.tokens, tokens);
      assert.ok(relErr(out.steps[0], await prefill.data()) <= TOL, 'prefill');
    });
  }
});
