/**
 * recipes/needle-timeviper.json from scratch: the model setup builds is needle_timeviper.py's TimeViper — the needle
 * tokenizer with the nano_base specials (`<image>` last, not embedded), the config completed from it — initialised
 * as PyTorch initialises that script's modules.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { parseTimeViperConfig } from '../../src/models/timeviper/config.js';
import { getBackend } from '../../src/runtime/device.js';
import { readRecipe } from '../../src/train/recipe.js';
import { setupModel } from '../../src/train/setup.js';
import { fromScratch, stats } from './from-scratch.js';

test('the needle TimeViper from scratch: needle_timeviper.py’s model and initialisation', () =>
  fromScratch('needle-timeviper.json', async ({ model, tokenizer, files }, weight) => {
    const c = parseTimeViperConfig(model.configJson);
    const image = tokenizer.tokenToId('<image>')!;
    assert.equal(image, tokenizer.vocabSize - 1, '<image> is the last id');
    assert.equal(c.llm.vocab_size, image, 'every token but <image> is embedded');
    assert.equal(c.imageTokenId, image);
    for (const t of ['<SPECIAL_10>', '<SPECIAL_11>', '<SPECIAL_12>'])
      assert.ok(tokenizer.tokenToId(t)! < c.llm.vocab_size, `${t} is embedded`);
    assert.deepEqual(JSON.parse(files['generation_config.json']!).eos_token_id, [2]);
    assert.equal(c.tokensPerFrame, 16);
    assert.equal(c.featureBlock, 1, 'the second-to-last of 3 blocks');
    const w = async (n: string) => stats(await weight(n));
    const V = 'vision_backbone.featurizer.';
    const L = 'llm_backbone.llm.';
    // Linear / conv weights and biases U(±1/√fan_in): the patch conv (3·14·14), qkv (128), the LM head (192).
    for (const [name, fan] of [
      [`${V}patch_embed.proj.weight`, 3 * 14 * 14],
      [`${V}patch_embed.proj.bias`, 3 * 14 * 14],
      [`${V}blocks.0.attn.qkv.weight`, 128],
      ['projector.projector.2.weight', 192],
      [`${L}backbone.layers.0.mixer.in_proj.weight`, 192],
      [`${L}backbone.layers.0.mixer.conv1d.weight`, 4],
      [`${L}lm_head.weight`, 192],
    ] as const) {
      const s = await w(name);
      const bound = 1 / Math.sqrt(fan);
      assert.ok(
        s.max <= bound && s.min >= -bound && s.max > 0.8 * bound,
        `${name} in ±${bound}: ${s.min}..${s.max}`,
      );
    }
    // Embeddings N(0, 1), SigLIP's position embedding N(0, 0.02²).
    assert.ok(Math.abs((await w(`${L}backbone.embeddings.weight`)).std - 1) < 0.1);
    assert.ok(Math.abs((await w(`${V}pos_embed`)).std - 0.02) < 0.003);
    // Norms 1 (LayerNorm biases 0), Mamba-2's D 1, A_log = log U(1, 16), dt_bias = softplus⁻¹(dt), dt in [1e-3, 0.1].
    for (const n of [
      `${V}blocks.0.norm1.weight`,
      `${L}backbone.norm_f.weight`,
      `${L}backbone.layers.0.norm.weight`,
    ])
      assert.deepEqual([(await w(n)).min, (await w(n)).max], [1, 1], n);
    assert.deepEqual((await w(`${V}blocks.0.norm2.bias`)).max, 0);
    assert.deepEqual((await w(`${L}backbone.layers.0.mixer.D`)).min, 1);
    const a = await w(`${L}backbone.layers.0.mixer.A_log`);
    assert.ok(a.min >= 0 && a.max <= Math.log(16), `A_log ${a.min}..${a.max}`);
    const dt = await w(`${L}backbone.layers.0.mixer.dt_bias`);
    const softplus = (x: number) => Math.log1p(Math.exp(x));
    assert.ok(softplus(dt.min) >= 1e-3 * 0.999 && softplus(dt.max) <= 0.1 * 1.001, `dt ${dt.min}..${dt.max}`);
  }));

// llm_config.initializer_range sets the embeddings' std (the easy stage's 0.02, as Hugging Face initialises them);
// the rest of the initialisation is the script's.
test('the needle TimeViper easy stage from scratch: text embeddings N(0, initializer_range²)', () =>
  fromScratch('needle-timeviper-easy.json', async ({ model }, weight) => {
    const llm = (model.configJson as { llm_config: { initializer_range?: number } }).llm_config;
    assert.equal(llm.initializer_range, 0.02, 'the recipe sets it, and the saved config keeps it');
    const e = stats(await weight('llm_backbone.llm.backbone.embeddings.weight'));
    assert.ok(
      Math.abs(e.std - 0.02) < 0.002 && Math.abs(e.mean) < 0.002,
      `embeddings std ${e.std}, mean ${e.mean}`,
    );
    const head = stats(await weight('llm_backbone.llm.lm_head.weight'));
    assert.ok(
      head.max <= 1 / Math.sqrt(192) && head.max > 0.8 / Math.sqrt(192),
      `lm_head ${head.min}..${head.max}`,
    );
  }));

test('a TimeViper from scratch with an initializer_range that is not a positive number is refused by name', async () => {
  const recipe = await readRecipe(
    join(import.meta.dirname, '..', '..', 'recipes', 'needle-timeviper-easy.json'),
  );
  const config = recipe.model.config as { llm_config: Record<string, unknown> };
  for (const bad of [0, -0.02]) {
    config.llm_config.initializer_range = bad;
    await assert.rejects(
      setupModel(recipe, await getBackend('cpu'), 'f32', null),
      (e: Error) =>
        e instanceof InputError && /llm_config\.initializer_range must be a positive number/.test(e.message),
    );
  }
});
