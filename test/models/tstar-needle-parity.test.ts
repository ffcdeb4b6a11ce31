/**
 * The tiny TSTAR-MambaMia's PyTorch trainer model (tools/reference/needle_mambamia.py, what train_needle.py trains
 * with `--model mambamia`) against our TSTAR family, on the fixture that script makes with random weights: the
 * compressed video tokens from the same pixel rows, and the last rows of the logits (a prefill, then decode steps
 * fed the fixture's tokens), f32 within 1e-5 of the largest value.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Tstar } from '../../src/models/tstar/model.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { relErr } from '../helpers.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'needle_mambamia');
const TOL = 1e-5;
const be = cpuBackend();

async function values(t: Tensor): Promise<Float32Array> {
  try {
    return Float32Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

it('the trainer model and the TSTAR family compute the same compressed tokens and logits', async () => {
  await using ref = await SafetensorsFile.open(join(DIR, 'reference.safetensors'));
  const pixels = await values(await ref.loadTensor(be, 'pixel_values', { dtype: 'f32' }));
  const ids = Array.from(await values(await ref.loadTensor(be, 'input_ids', { dtype: 'f32' })));
  const wantVideo = await values(await ref.loadTensor(be, 'video_tokens', { dtype: 'f32' }));
  const tail = await values(await ref.loadTensor(be, 'tail_logits', { dtype: 'f32' }));
  using model = await Tstar.load(DIR, be, 'f32');
  // 6 frames of 56×56: 3 groups of 4×4 patches.
  const grid = [3, 4, 4] as const;
  using vision = model.encodeVision(pixels, grid);
  using video = model.compress(vision, grid);
  const e = relErr(await video.data(), wantVideo);
  assert.ok(e <= TOL, `compressed tokens: relative error ${e.toExponential(2)}`);

  const pad = model.config.video_token_id;
  const at = ids.indexOf(pad);
  const full = [...ids.slice(0, at), ...new Array<number>(video.shape[0]).fill(pad), ...ids.slice(at + 1)];
  const vocab = model.config.vocab_size;
  const rows = tail.length / vocab;
  using session = model.session(full.length);
  let logits = session.prefill({ ids: full.slice(0, full.length - rows + 1), video });
  for (let i = 0; i < rows; i++) {
    const got = await values(logits);
    const err = relErr(got, tail.subarray(i * vocab, (i + 1) * vocab));
    assert.ok(err <= TOL, `logits row ${i}: relative error ${err.toExponential(2)}`);
    if (i + 1 < rows) logits = session.step(full[full.length - rows + 1 + i]);
  }
});
