/**
 * TimeViper against the official modules (tools/reference/timeviper_fixtures.py runs the official TimeViper
 * ToMe projector and its vendored Nemotron-H with pdrop and TransV on tiny random configs, f32): per case — no
 * drop, `uni` + `attn` drops, and the same with TransV — the checkpoint in the official layout loads, the frames
 * encode (SigLIP → ToMe → projector), and the prefill logits, the greedy tokens through the cache and each
 * step's logits match; the later segments' caches hold the shorter sequence; the torch.save copy of the TransV
 * checkpoint loads to the same logits.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { PthFile } from '../../src/io/pth.js';
import type { TensorSource } from '../../src/io/safetensors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { parseTimeViperConfig, readTimeViperConfig } from '../../src/models/timeviper/config.js';
import { TimeViperModel } from '../../src/models/timeviper/model.js';
import { loadTimeViperParams } from '../../src/models/timeviper/weights.js';
import { relErr } from '../helpers.js';
import { recordedGreedy } from './parity.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'timeviper');
const be = cpuBackend();
const STEPS = 6;
// The fixture's prompt: 5 text tokens, 4 frames of 16 tokens, 7 text tokens.
const [BEFORE, VISION, AFTER] = [5, 64, 7];

async function reference(dir: string) {
  await using f = await SafetensorsFile.open(join(dir, 'reference.safetensors'));
  const get = async (n: string) => {
    using t = await f.loadTensor(be, n);
    return Array.from(await t.data());
  };
  return {
    pixels: await f.loadTensor(be, 'pixels', { dtype: 'f32' }),
    ids: await get('input_ids'),
    prefill: await get('prefill_logits'),
    tokens: await get('greedy_tokens'),
    steps: await get('step_logits'),
  };
}

async function model(dir: string, source: TensorSource) {
  const config = await readTimeViperConfig(dir);
  return TimeViperModel.fromParams(config, await loadTimeViperParams(source, config, be, 'f32', dir));
}

async function run(m: TimeViperModel, ref: Awaited<ReturnType<typeof reference>>) {
  using visual = await m.encode(ref.pixels);
  using session = m.session();
  const out = await recordedGreedy(session, { ids: ref.ids, visual }, { maxNewTokens: STEPS });
  return { ...out, caches: session.caches.map((c) => c.length), kept: session.kept };
}

describe('TimeViper parity with the official modules', () => {
  for (const [name, lengths] of [
    ['plain', [BEFORE + VISION + AFTER]],
    // 64 vision tokens → 22 (uniform) → 16 (attention-guided)
    ['drop', [BEFORE + VISION + AFTER, BEFORE + 22 + AFTER, BEFORE + 16 + AFTER]],
    ['transv', [BEFORE + VISION + AFTER, BEFORE + 22 + AFTER, BEFORE + 16 + AFTER]],
  ] as const) {
    it(`${name}: prefill logits, greedy tokens and step logits; the caches hold the dropped sequence`, async () => {
      const dir = join(DIR, name);
      const ref = await reference(dir);
      await using ckpt = await Checkpoint.open(dir);
      using m = await model(dir, ckpt);
      const out = await run(m, ref);
      ref.pixels.dispose();
      assert.deepEqual(out.tokens, ref.tokens);
      assert.ok(relErr(out.steps[0], ref.prefill) <= 1e-5, `prefill ${relErr(out.steps[0], ref.prefill)}`);
      const vocab = ref.prefill.length;
      out.steps.forEach((s, i) => {
        const want = ref.steps.slice(i * vocab, (i + 1) * vocab);
        assert.ok(relErr(s, want) <= 1e-5, `step ${i}: ${relErr(s, want)}`);
      });
      // Each segment's cache: its prefill length plus the STEPS − 1 decode steps fed back.
      assert.deepEqual(
        out.caches,
        lengths.map((l) => l + STEPS - 1),
      );
      if (name !== 'plain') {
        assert.equal(out.kept.length, 2);
        assert.deepEqual(
          out.kept[0],
          Array.from({ length: 22 }, (_, i) => 3 * i),
        );
        assert.equal(out.kept[1].length, 16);
        assert.ok(out.kept[1].every((v, i) => v >= 0 && v < 22 && (i === 0 || v > out.kept[1][i - 1])));
      }
    });
  }

  it('transv: the torch.save copy loads through the safe .pth reader to the same logits', async () => {
    const dir = join(DIR, 'transv');
    const ref = await reference(dir);
    await using pth = await PthFile.open(join(dir, 'model.pth'));
    using m = await model(dir, pth);
    const out = await run(m, ref);
    ref.pixels.dispose();
    assert.deepEqual(out.tokens, ref.tokens);
    assert.ok(relErr(out.steps[0], ref.prefill) <= 1e-5);
  });

  it('num_compressed_tokens equal to the patches of a frame keeps them all (no ToMe round); more is refused', async () => {
    const dir = join(DIR, 'plain');
    const ref = await reference(dir);
    await using st = await SafetensorsFile.open(join(dir, 'model.safetensors'));
    const config = { ...(await readTimeViperConfig(dir)), tokensPerFrame: 49 }; // 30 px in patches of 4: 7 × 7
    using m = await TimeViperModel.fromParams(config, await loadTimeViperParams(st, config, be, 'f32', dir));
    using visual = await m.encode(ref.pixels);
    using features = m.vision.forward(ref.pixels);
    using want = m.projector.forward(features);
    ref.pixels.dispose();
    assert.deepEqual(visual.shape, [ref.pixels.shape[0], 49, want.shape[2]]);
    assert.deepEqual(await visual.data(), await want.data());
    const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.throws(
      () => parseTimeViperConfig({ ...raw, num_compressed_tokens: 50 }),
      /num_compressed_tokens.*is 50, more than the 49 patches a frame has/,
    );
  });
});
