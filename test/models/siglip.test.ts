/**
 * The SigLIP tower against timm's VisionTransformer (`vit_so400m_patch14_siglip_384` shrunk: TimeViper's layout,
 * exact GELU) and transformers' SiglipVisionModel (tanh GELU), both read at the second-to-last block without the
 * final norm (tools/reference/timeviper_fixtures.py; 30 px images in 4 px patches, so the last 2 px are dropped
 * as 384/14 drops 6). The unused final norm, pooling head and last block are in the files and not loaded.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { ModelError } from '../../src/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import {
  parseSiglipVisionConfig,
  resolveBlock,
  type SiglipLayout,
  SiglipVision,
  siglipLayoutOf,
  siglipSpecs,
  siglipUnused,
  so400m,
} from '../../src/models/siglip/index.js';
import { ParamStore } from '../../src/nn/params.js';
import { relErr } from '../helpers.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'timeviper');
const be = cpuBackend();
const file = await SafetensorsFile.open(join(DIR, 'siglip.safetensors'));
after(() => file.close());
const configs = JSON.parse(readFileSync(join(DIR, 'siglip.json'), 'utf8'));

async function tower(layout: SiglipLayout) {
  const prefix = `${layout}.`;
  const c = parseSiglipVisionConfig(configs[layout], layout);
  const block = resolveBlock(c, configs.feature_block);
  const names = file.names().filter((n) => n.startsWith(prefix));
  assert.equal(siglipLayoutOf(names, prefix), layout);
  const wanted = new Set(siglipSpecs(c, layout, block, prefix).map((s) => s.name));
  // Everything in the file is either read or known to be unused.
  for (const n of names) assert.ok(wanted.has(n) || siglipUnused(n.slice(prefix.length), layout, block), n);
  const tensors = new Map();
  for (const n of wanted) tensors.set(n, await file.loadTensor(be, n, { dtype: 'f32' }));
  const store = new ParamStore(tensors);
  const model = SiglipVision.load(store, c, layout, block, prefix);
  assert.deepEqual(store.remaining(), []);
  return model;
}

describe('SigLIP vision tower', () => {
  for (const [layout, key] of [
    ['timm', 'timm_features'],
    ['hf', 'hf_features'],
  ] as const) {
    it(`${layout} layout: the second-to-last block's features`, async () => {
      using model = await tower(layout);
      using pixels = await file.loadTensor(be, 'pixels', { dtype: 'f32' });
      using want = await file.loadTensor(be, key, { dtype: 'f32' });
      using got = model.forward(pixels);
      assert.deepEqual(got.shape, want.shape);
      assert.ok(relErr(await got.data(), await want.data()) <= 1e-5);
    });
  }

  it('so400m: 27×27 patches of 1152, GELU by layout, block −2 is 25', () => {
    const c = so400m('timm');
    assert.equal(resolveBlock(c, -2), 25);
    assert.equal(c.hidden_act, 'gelu');
    assert.equal(so400m('hf').hidden_act, 'gelu_pytorch_tanh');
    assert.equal(siglipSpecs(c, 'timm', 25).find((s) => s.name === 'pos_embed')?.shape[1], 729);
    assert.throws(() => resolveBlock(c, 27), ModelError);
  });

  it('refuses pixels of the wrong size', async () => {
    using model = await tower('timm');
    using pixels = await file.loadTensor(be, 'pixels', { dtype: 'f32' });
    assert.throws(() => model.forward(pixels.reshape([2, 3, 900])), /pixel values \[2, 3, 900\]/);
  });
});
