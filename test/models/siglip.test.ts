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
  siglipPixels,
  siglipPixelsOn,
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
  assert.deepEqual(siglipLayoutOf(names, prefix), { layout, prefix });
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
    // A published transformers checkpoint nests the tower under vision_model.
    assert.deepEqual(siglipLayoutOf(['v.vision_model.embeddings.patch_embedding.weight'], 'v.'), {
      layout: 'hf',
      prefix: 'v.vision_model.',
    });
    assert.equal(siglipLayoutOf(['text_model.embeddings.token_embedding.weight']), null);
  });

  it('refuses pixels of the wrong size', async () => {
    using model = await tower('timm');
    using pixels = await file.loadTensor(be, 'pixels', { dtype: 'f32' });
    assert.throws(() => model.forward(pixels.reshape([2, 3, 900])), /pixel values \[2, 3, 900\]/);
  });
});

describe('SigLIP pixels on a backend', () => {
  const size = 6;
  const frameBytes = size * size * 3;
  /** `n` frames at size×size lying one after another in one buffer, every byte value among them. */
  const joined = (n: number) => {
    const all = Uint8Array.from({ length: n * frameBytes }, (_, i) => (i * 37 + 11) & 255);
    return Array.from({ length: n }, (_, t) => ({
      width: size,
      height: size,
      data: all.subarray(t * frameBytes, (t + 1) * frameBytes),
    }));
  };

  it('equals the host values bit for bit: runs of joined frames, frames of other sizes, every byte value', async () => {
    const other = {
      width: 9,
      height: 4,
      data: Uint8Array.from({ length: 9 * 4 * 3 }, (_, i) => (i * 53) & 255),
    };
    const every = { width: 16, height: 16, data: Uint8Array.from({ length: 768 }, (_, i) => i & 255) };
    const lone = { width: size, height: size, data: joined(1)[0].data.slice() };
    for (const frames of [joined(3), [...joined(2), other, lone, ...joined(2)], [every]]) {
      using px = siglipPixelsOn(be, frames, size);
      assert.deepEqual(px.shape, [frames.length, 3, size, size]);
      assert.deepEqual(await px.data(), siglipPixels(frames, size));
    }
  });

  it('refuses a frame with fewer bytes than its size says', () => {
    const short = { width: size, height: size, data: new Uint8Array(frameBytes - 1) };
    assert.throws(() => siglipPixelsOn(be, [short], size), /frame 0: 107 bytes for 6×6 RGB \(needs 108\)/);
  });
});
