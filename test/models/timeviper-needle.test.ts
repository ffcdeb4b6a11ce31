/**
 * The needle trainer's TimeViper (tools/reference/needle_timeviper.py, PyTorch) and ours compute the same model:
 * a small random checkpoint it wrote (official layout, our config.json) and its logits for one prompt with three
 * 112×112 frames (uint8, preprocessed here by SigLIP's transform, there by its own), so training-time and
 * inference-time model code agree before a model is trained and shipped.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import type { Frame } from '../../src/media/decode.js';
import { siglipPixels } from '../../src/models/siglip/preprocess.js';
import { TimeViperModel } from '../../src/models/timeviper/model.js';
import * as ops from '../../src/runtime/ops.js';
import { relErr } from '../helpers.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'timeviper', 'needle-tiny');
const be = cpuBackend();

describe('needle TimeViper (PyTorch trainer) = TimeViper (TypeScript)', () => {
  it('the last prompt row’s logits', async () => {
    await using ref = await SafetensorsFile.open(join(DIR, 'reference.safetensors'));
    const raw = await ref.read('frames');
    const [t, h, w] = raw.shape;
    const bytes = raw.data as Uint8Array;
    const frames: Frame[] = Array.from({ length: t }, (_, i) => ({
      index: i,
      timestampSec: i,
      width: w,
      height: h,
      data: bytes.subarray(i * h * w * 3, (i + 1) * h * w * 3),
    }));
    using model = await TimeViperModel.load(DIR, be, 'f32');
    using pixels = ops.tensor(be, siglipPixels(frames, model.config.vision.image_size), [t, 3, h, w]);
    using visual = await model.encode(pixels);
    const ids = Array.from((await ref.read('input_ids')).data as BigInt64Array, Number);
    using session = model.session();
    using logits = await session.prefill({ ids, visual });
    const all = (await ref.read('logits')).data as Float32Array;
    const vocab = logits.shape[1];
    assert.ok(relErr(await logits.data(), all.subarray(all.length - vocab)) <= 1e-5);
  });
});
