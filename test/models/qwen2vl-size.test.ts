// Parameter counts and the memory estimate, from configs alone.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseQwen2VLConfig, readQwen2VLConfig } from '../../src/models/qwen2vl/config.js';
import { countParameters, estimateMemory } from '../../src/models/qwen2vl/size.js';
import { FIXTURES, readJson } from './qwen2vl-fixtures.js';

// The full Qwen2-VL-7B config.json (flat 4.x layout, as on the hub).
const QWEN2VL_7B = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  model_type: 'qwen2_vl',
  hidden_size: 3584,
  intermediate_size: 18944,
  num_attention_heads: 28,
  num_hidden_layers: 28,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  vocab_size: 152064,
  tie_word_embeddings: false,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_token_id: 151654,
  image_token_id: 151655,
  video_token_id: 151656,
  vision_config: {
    depth: 32,
    embed_dim: 1280,
    mlp_ratio: 4,
    num_heads: 16,
    in_chans: 3,
    hidden_size: 3584,
    patch_size: 14,
    spatial_merge_size: 2,
    spatial_patch_size: 14,
    temporal_patch_size: 2,
  },
};

test('parameter count: Qwen2-VL-7B has 8,291,375,616; the tiny fixtures match transformers', async () => {
  assert.equal(countParameters(parseQwen2VLConfig(QWEN2VL_7B)), 8_291_375_616);
  for (const name of ['tiny-a', 'tiny-b']) {
    const meta = await readJson(join(FIXTURES, name, 'reference.json'));
    assert.equal(countParameters(await readQwen2VLConfig(join(FIXTURES, name))), meta.num_parameters, name);
  }
});

test('memory estimate: weights, KV cache and tokens follow the formulas', () => {
  const c = parseQwen2VLConfig(QWEN2VL_7B);
  const e = estimateMemory(c, { frames: 16, width: 1280, height: 720, textTokens: 50, newTokens: 100 });
  // 1280x720 rounds to 728x1288 > 768·28² = 602112, so β = √(921600/602112) ≈ 1.2372 and the frame becomes
  // ⌊720/β/28⌋·28 = 560 by ⌊1280/β/28⌋·28 = 1008: 40x72 patches per 2-frame group.
  const perGroup = 40 * 72;
  assert.equal(e.tokens.video, (8 * perGroup) / 4);
  assert.equal(e.tokens.total, e.tokens.video + 150);
  assert.equal(e.weightBytes, 8_291_375_616 * 2);
  assert.equal(e.kvCacheBytes, 2 * 28 * 4 * 128 * e.tokens.total * 2);
  assert.ok(e.activationBytes > 0);
  assert.equal(e.totalBytes, e.weightBytes + e.kvCacheBytes + e.activationBytes);
  // More frames never need less memory.
  assert.ok(estimateMemory(c, { frames: 64 }).totalBytes > estimateMemory(c, { frames: 8 }).totalBytes);
});
