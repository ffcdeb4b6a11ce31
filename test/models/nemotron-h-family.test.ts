import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { nemotronH } from '../../src/models/nemotron_h/family.js';
import { familyOf } from '../../src/models/registry.js';

const config = JSON.parse(readFileSync('test/fixtures/nemotron_h/nano-like/config.json', 'utf8'));
const files = (c: object, tensorNames: string[] = []) => ({ dir: 'x', config: c as never, tensorNames });
const weights = { parameters: 1000, weightBytes: 4000, dtype: 'F32' };

describe('the nemotron_h model family', () => {
  it('is recognised by model_type, or by its tensor names with a block pattern, and not for a plain Mamba-2', () => {
    assert.equal(familyOf(files(config)).name, 'nemotron_h');
    const { model_type: _, ...untyped } = config;
    assert.equal(familyOf(files(untyped, ['backbone.layers.0.mixer.in_proj.weight'])).name, 'nemotron_h');
    // Mamba-2 (transformers' Mamba2ForCausalLM) writes the same backbone names, without a pattern.
    assert.equal(
      nemotronH.recognizes(
        files({ model_type: 'mamba2' }, ['backbone.embeddings.weight', 'backbone.layers.0.mixer.D']),
      ),
      false,
    );
    assert.equal(nemotronH.video, undefined, 'a text model has no video policy');
  });

  it('describes the stack and estimates memory for a context', async () => {
    const opened = await nemotronH.open(files(config), weights);
    const d = opened.describe();
    assert.equal(d.layers, 10);
    assert.equal(d.hiddenSize, 32);
    assert.deepEqual(Object.fromEntries(d.details).blocks, '5 M (Mamba-2) / 1 * (attention) / 4 - (MLP)');
    const e = opened.estimateMemory({
      frames: 0,
      width: 0,
      height: 0,
      activationBytes: 4,
      contextTokens: 100,
    });
    // nano-like: 1 attention block, 1 kv head of 16, f32 → 2·16·4 bytes a token; 5 Mamba blocks of
    // 8 heads × 10 × state 8 (f32) and a conv window of 3 × (80 + 2·4·8) (f32).
    assert.equal(e.contextTokens, 100);
    assert.equal(e.videoState, 100 * 2 * 16 * 4 + 5 * (8 * 10 * 8 * 4 + 3 * 144 * 4));
    assert.equal(e.videoTokens, 0);
    assert.equal(e.total, 4000 + e.videoState + e.working);
    // Without a context: the config's max_position_embeddings.
    assert.equal(
      opened.estimateMemory({ frames: 0, width: 0, height: 0, activationBytes: 2 }).contextTokens,
      4096,
    );
  });

  it('names a bad pattern character when opened', async () => {
    await assert.rejects(
      nemotronH.open(files({ ...config, hybrid_override_pattern: 'M-E*-M-MM-' }), weights),
      (e: Error) => e instanceof ModelError && /E/.test(e.message),
    );
  });
});
