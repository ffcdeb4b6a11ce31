import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { compilePattern, trainableNames } from '../../src/train/freeze.js';

const NAMES = [
  'visual.patch_embed.proj.weight',
  'visual.blocks.0.attn.qkv.weight',
  'model.embed_tokens.weight',
  'model.layers.0.self_attn.q_proj.weight',
  'model.layers.0.cross_attn.q_proj.weight',
  'model.layers.0.cross_attn.q_proj.bias',
  'model.layers.0.vision_mixer.mixer.A_log',
  'model.layers.0.vision_mixer.norm.weight',
  'model.layers.1.cross_attn.o_proj.weight',
  'model.layers.1.mlp.up_proj.weight',
  'lm_head.weight',
];

test('globs: * stays within a name segment, ** crosses them, ? is one character', () => {
  assert.ok(compilePattern('model.layers.*.cross_attn.**')('model.layers.12.cross_attn.q_proj.weight'));
  assert.ok(!compilePattern('model.layers.*.weight')('model.layers.0.mlp.weight'));
  assert.ok(compilePattern('model.layers.?.mlp.**')('model.layers.1.mlp.up_proj.weight'));
  assert.ok(!compilePattern('model.layers.?.mlp.**')('model.layers.10.mlp.up_proj.weight'));
  assert.ok(compilePattern('lm_head.weight')('lm_head.weight'));
  assert.ok(!compilePattern('lm_head.weight')('lm_headXweight')); // '.' is literal
});

test('regular expressions between slashes are searched in the name', () => {
  const m = compilePattern('/cross_attn|vision_mixer/');
  assert.deepEqual(NAMES.filter(m), [
    'model.layers.0.cross_attn.q_proj.weight',
    'model.layers.0.cross_attn.q_proj.bias',
    'model.layers.0.vision_mixer.mixer.A_log',
    'model.layers.0.vision_mixer.norm.weight',
    'model.layers.1.cross_attn.o_proj.weight',
  ]);
  assert.throws(
    () => compilePattern('/(unclosed/', 'recipe.json: train'),
    (e: Error) => e instanceof InputError && /not a valid regular expression/.test(e.message),
  );
});

test('Vamba stage 1: only the new layers train; freeze applies after train', () => {
  const stage1 = trainableNames(NAMES, {
    train: ['model.layers.*.cross_attn.**', 'model.layers.*.vision_mixer.**'],
  });
  assert.deepEqual(
    stage1,
    NAMES.filter((n) => /cross_attn|vision_mixer/.test(n)),
  );
  const noBias = trainableNames(NAMES, { train: ['model.layers.*.cross_attn.**'], freeze: ['**.bias'] });
  assert.deepEqual(noBias, [
    'model.layers.0.cross_attn.q_proj.weight',
    'model.layers.1.cross_attn.o_proj.weight',
  ]);
  assert.deepEqual(
    trainableNames(NAMES, { freeze: ['visual.**'] }),
    NAMES.filter((n) => !n.startsWith('visual.')),
  );
  assert.deepEqual(trainableNames(NAMES, {}), NAMES);
});

test('a pattern that matches nothing, or nothing left to train, is an error naming it', () => {
  assert.throws(
    () => trainableNames(NAMES, { train: ['model.layers.*.crossattn.**'] }, 'r.json'),
    (e: Error) =>
      e instanceof InputError &&
      e.message.includes('r.json: train pattern "model.layers.*.crossattn.**" matches no parameter'),
  );
  assert.throws(
    () => trainableNames(NAMES, { freeze: ['**'] }, 'r.json'),
    (e: Error) => e instanceof InputError && /leave no parameter to train/.test(e.message),
  );
});
