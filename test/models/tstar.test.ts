/**
 * TSTAR (vision tower + MambaMia + LLM): its config, that each LLM seam gives the logits of the LLM family it
 * wraps (the same random weights loaded both ways), and the runner end to end on a tiny checkpoint: a video
 * encoded to the compressor's token count, a prompt with the placeholder expanded, the count in `usage`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { InputError, ModelError } from '../../src/errors.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { NemotronHForCausalLM } from '../../src/models/nemotron_h/model.js';
import { Qwen2VL } from '../../src/models/qwen2vl/model.js';
import { familyOf } from '../../src/models/registry.js';
import { parseTstarConfig } from '../../src/models/tstar/config.js';
import { Tstar } from '../../src/models/tstar/model.js';
import { loadTstarRunner } from '../../src/models/tstar/runner.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { relErr } from '../helpers.js';
import { randomHost, storeOf, tinyTstarJson, writeTinyTstar } from './tiny-tstar.js';

const be = cpuBackend();

async function row(t: Tensor): Promise<Float64Array> {
  try {
    return Float64Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

describe('TSTAR config', () => {
  it('composes the tower, the compressor and either LLM', () => {
    const q = parseTstarConfig(tinyTstarJson('qwen2'));
    assert.equal(q.text.kind, 'qwen2');
    assert.deepEqual([q.hidden_size, q.vocab_size, q.num_hidden_layers], [64, 100, 2]);
    assert.equal(q.projector.mambamia_bidirectional, true);
    const n = parseTstarConfig(tinyTstarJson('nemotron_h'));
    assert.deepEqual([n.text.kind, n.hidden_size, n.num_hidden_layers], ['nemotron_h', 32, 10]);
  });

  it('refuses widths that do not chain, an unknown LLM and a missing placeholder, naming the key', () => {
    const json = tinyTstarJson('qwen2');
    const bad = (patch: object) => () => parseTstarConfig({ ...json, ...patch });
    assert.throws(
      bad({ mm_projector_config: { ...(json.mm_projector_config as object), output_size: 48 } }),
      /mm_projector_config.output_size 48 ≠ the LLM's width text_config.hidden_size 64/,
    );
    assert.throws(
      bad({ mm_projector_config: { ...(json.mm_projector_config as object), input_size: 40 } }),
      ModelError,
    );
    assert.throws(
      bad({ text_config: { model_type: 'llama' } }),
      /model_type "llama" is not an LLM TSTAR has here/,
    );
    assert.throws(bad({ video_token_id: undefined }), /"video_token_id" is missing/);
  });

  it('is recognised by the registry before Qwen2-VL', () => {
    const family = familyOf({
      dir: 'x',
      config: tinyTstarJson('qwen2'),
      tensorNames: ['visual.patch_embed.proj.weight'],
    });
    assert.equal(family.name, 'tstar');
  });
});

describe('TSTAR language models', () => {
  const ids = [1, 9, 23, 40, 7, 2, 55, 3];

  it('Qwen2: the same logits as Qwen2-VL’s decoder on a text prompt (1-D positions)', async () => {
    const c = parseTstarConfig(tinyTstarJson('qwen2'));
    const host = randomHost(c, 11);
    using tstar = Tstar.fromParams(c, storeOf(host), be, 'f32');
    for (const n of [...host.keys()]) if (n.startsWith('mm_projector.')) host.delete(n);
    if (c.text.kind !== 'qwen2') throw new Error('qwen2 expected');
    using vlm = Qwen2VL.fromParams(c.text.config, storeOf(host), be, 'f32');
    using session = tstar.session(16);
    const ours = await row(session.prefill({ ids, video: null }));
    const all = await row(vlm.forward({ inputIds: ids }));
    const want = all.subarray(all.length - c.vocab_size);
    assert.ok(relErr(ours, want) <= 1e-5, `relative error ${relErr(ours, want)}`);
    const next = await row(session.step(5));
    const all2 = await row(vlm.forward({ inputIds: [...ids, 5] }));
    assert.ok(relErr(next, all2.subarray(all2.length - c.vocab_size)) <= 1e-5, 'decode step');
  });

  it('Nemotron-H: the same logits as NemotronHForCausalLM', async () => {
    const c = parseTstarConfig(tinyTstarJson('nemotron_h'));
    const host = randomHost(c, 12);
    using tstar = Tstar.fromParams(c, storeOf(host), be, 'f32');
    for (const n of [...host.keys()])
      if (!n.startsWith('backbone.') && n !== 'lm_head.weight') host.delete(n);
    if (c.text.kind !== 'nemotron_h') throw new Error('nemotron_h expected');
    using lm = NemotronHForCausalLM.fromParams(c.text.config, storeOf(host));
    using session = tstar.session(16);
    const ours = await row(session.prefill({ ids, video: null }));
    const want = await row(lm.forward(ids, null, { lastOnly: true }));
    assert.ok(relErr(ours, want) <= 1e-5, `relative error ${relErr(ours, want)}`);
  });
});

describe('TSTAR runner (tiny checkpoint)', () => {
  let dir = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tstar-'));
    await writeTinyTstar(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const frames = (n: number, size = 56) =>
    (async function* () {
      yield Array.from({ length: n }, (_, i) => ({
        index: i,
        timestampSec: i,
        width: size,
        height: size,
        data: Uint8Array.from({ length: size * size * 3 }, (_, j) => (i * 37 + j * 11) % 256),
      }));
    })();
  const ctx = (n: number) => ({
    kind: 'video' as const,
    timestampsSec: Array.from({ length: n }, (_, i) => i),
    sampling: { sampling: 'uniform' as const, frames: n, fps: 1, maxEdge: 56, minEdge: 56 },
  });

  it('encodes a clip to the compressor’s tokens and reports them in usage', async () => {
    const config = parseTstarConfig(tinyTstarJson('qwen2'));
    const runner = await loadTstarRunner(
      { id: dir, dir, config, weights: { parameters: 0, weightBytes: 0, dtype: 'F32' } },
      be,
    );
    try {
      // 6 frames of 56×56: 3 groups of 2×2 merged tokens, one query per k = 4 → 3 tokens.
      const video = await runner.encode(frames(6), ctx(6));
      assert.equal(video.tokens, 3);
      const gen = runner.generate([{ role: 'user', content: 'what' }], video, { maxNewTokens: 2 });
      let r = await gen.next();
      while (!r.done) r = await gen.next();
      const tok = await Tokenizer.fromDir(dir);
      const prompt = tok.encode(
        tok.applyChatTemplate(
          [{ role: 'user', content: [{ type: 'video' }, { type: 'text', text: 'what' }] }],
          {
            addGenerationPrompt: true,
          },
        ),
        { addSpecialTokens: false },
      );
      assert.equal(r.value.usage.videoTokens, 3);
      assert.equal(r.value.usage.promptTokens, prompt.length - 1);
      assert.equal(r.value.usage.totalTokens, prompt.length - 1 + 3 + r.value.usage.completionTokens);
      video.dispose();
    } finally {
      runner.dispose();
    }
  });

  it('refuses a frame size whose tokens do not fill groups of k, saying what to change', async () => {
    const config = parseTstarConfig(tinyTstarJson('qwen2'));
    const runner = await loadTstarRunner(
      { id: dir, dir, config, weights: { parameters: 0, weightBytes: 0, dtype: 'F32' } },
      be,
    );
    try {
      // 84×84: 3×3 merged tokens per group, 9 per group × 1 group is not a multiple of 4.
      await assert.rejects(runner.encode(frames(2, 84), ctx(2)), (e: unknown) => {
        assert.ok(e instanceof InputError);
        assert.match(e.message, /1 frames × 9 patches = 9 tokens are not a multiple of k = 4/);
        return true;
      });
    } finally {
      runner.dispose();
    }
  });
});
