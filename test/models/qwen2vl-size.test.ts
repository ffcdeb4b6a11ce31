// Parameter counts and the memory estimate, from configs alone.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseQwen2VLConfig, readQwen2VLConfig } from '../../src/models/qwen2vl/config.js';
import { countParameters, estimateMemory } from '../../src/models/qwen2vl/size.js';
import { configJson } from './config-fixtures.js';
import { FIXTURES, readJson } from './qwen2vl-fixtures.js';

// Qwen2-VL-7B-Instruct's config.json (flat 4.x layout, as on the hub).
const QWEN2VL_7B = configJson('qwen2vl-7b-instruct');

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
