/**
 * The CPU trainer really learns: a tiny needle Vamba (hidden 32, 2 layers) trained from scratch on a pool of
 * 8 generated 8-frame videos ends far below the loss a model blind to the video could reach on the same
 * askings (computed here from the data: the entropy of the answers among askings with the same prompt), and
 * answers the pool right.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { Vamba } from '../../src/models/vamba/model.js';
import { assertLearns, tinyRecipe } from './tiny.js';

test('a tiny Vamba trained on CPU learns what only the video tells (loss below the blind bound)', async () => {
  const { report } = await assertLearns(tinyRecipe());

  // The checkpoint is a model directory the other commands load.
  const dir = report.checkpoint;
  for (const f of [
    'config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
    'preprocessor_config.json',
    'generation_config.json',
  ])
    assert.ok(existsSync(join(dir, f)), f);
  const m = await Vamba.load(dir);
  assert.equal(m.config.text.hidden_size, 32);
  m[Symbol.dispose]();
  const ck = await Checkpoint.open(dir);
  assert.ok(ck.names().includes('model.layers.1.vision_mixer.mixer.A_log'));
  await ck.close();
  // The log has a line per logged step, the curve is a PNG.
  const lines = readFileSync(report.log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.filter((l) => 'loss' in l).map((l) => l.step),
    Array.from({ length: 31 }, (_, i) => Math.max(1, 10 * i)),
  );
  assert.deepEqual([...readFileSync(report.curve).subarray(1, 4)], [0x50, 0x4e, 0x47]);
});
