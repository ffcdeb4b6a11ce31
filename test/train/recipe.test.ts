import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { openRecipe, readRecipe } from '../../src/train/recipe.js';
import { type RecipeJson, recipeError, TINY_PATH } from './tiny.js';

const RECIPES = join(import.meta.dirname, '..', '..', 'recipes');

test('every shipped recipe parses; paths resolve against the recipe file', async () => {
  const files = readdirSync(RECIPES).filter((f) => f.endsWith('.json'));
  assert.deepEqual(files.sort(), [
    'mambamia.json',
    'needle-mambamia-v2.json',
    'needle-mambamia.json',
    'needle-qwen2vl-v2.json',
    'needle-qwen2vl.json',
    'needle-timeviper-colour.json',
    'needle-timeviper-easy.json',
    'needle-timeviper-v2.json',
    'needle-timeviper.json',
    'needle-vamba-count.json',
    'needle-vamba-v2.json',
    'needle-vamba.json',
    'timeviper.json',
    'vamba-stage1.json',
    'vamba-stage2.json',
  ]);
  for (const f of files) {
    const r = await readRecipe(join(RECIPES, f));
    assert.equal(r.name, f.replace('.json', ''));
  }
  const needle = await readRecipe(join(RECIPES, 'needle-vamba.json'));
  assert.deepEqual(needle.optimizer, {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.98,
    eps: 1e-8,
    weightDecay: 0.05,
    clip: 1,
  });
  assert.deepEqual(needle.schedule, { steps: 3000, warmup: 150, minRatio: 0.05 });
  assert.deepEqual(needle.batch, { videos: 32, baseFrames: 32, accumulate: 1, checkpoint: false, echo: 1 });
  assert.equal(needle.output.dir, join(RECIPES, '..', 'runs', 'needle-vamba'));
  const s1 = await readRecipe(join(RECIPES, 'vamba-stage1.json'));
  assert.ok(s1.model.initCrossAttentionFromSelfAttention);
  assert.equal(s1.model.from, join(RECIPES, '..', 'models', 'Qwen2-VL-7B-Instruct'));
  assert.deepEqual(s1.train, ['model.layers.*.cross_attn.**', 'model.layers.*.vision_mixer.**']);
  const s2 = await readRecipe(join(RECIPES, 'vamba-stage2.json'));
  assert.deepEqual(s2.distill && { topK: s2.distill.topK, weight: s2.distill.weight }, {
    topK: 100,
    weight: 1,
  });
});

const errorOf = (edit: (j: RecipeJson) => void) => recipeError(edit);

test('bad recipes: each error names the file, the key and what is wrong', () => {
  const cases: [(j: RecipeJson) => void, string][] = [
    [(j) => (j.optimiser = {}), 'recipe r.json: unknown key optimiser; allowed here: name, model'],
    [(j) => (j.optimizer.learningRate = 1), 'unknown key optimizer.learningRate; allowed here: lr, betas'],
    [(j) => delete j.optimizer.lr, 'recipe r.json: optimizer.lr is required'],
    [(j) => (j.optimizer.lr = '1e-3'), 'optimizer.lr must be a number, got "1e-3"'],
    [(j) => (j.optimizer.lr = 0), 'optimizer.lr must be greater than 0, got 0'],
    [(j) => (j.optimizer.betas = [0.9]), 'optimizer.betas must be two numbers'],
    [(j) => (j.optimizer.betas = [0.9, 1]), 'optimizer.betas[1] must be in [0, 1), got 1'],
    [(j) => (j.schedule.steps = 2.5), 'schedule.steps must be an integer, got 2.5'],
    [(j) => (j.schedule.minRatio = 2), 'schedule.minRatio must be at most 1, got 2'],
    [(j) => (j.batch = { videos: 2, accumulate: 4 }), 'batch.accumulate (4) cannot exceed batch.videos (2)'],
    [
      (j) => (j.model.family = 'llama'),
      'model.family must be one of "vamba", "qwen2vl", "timeviper", "mambamia", got "llama"',
    ],
    [(j) => delete j.model.config, 'model.config is required when "from" is "scratch"'],
    [(j) => (j.model.from = 'some/dir'), 'model.config is only for "from": "scratch"'],
    [
      (j) => (j.data.train.kind = 'parquet'),
      'data.train.kind must be one of "needle", "shards", "jsonl", got "parquet"',
    ],
    [(j) => (j.data.train.frames = [8, 9]), 'data.train.frames must be even (frames pair up in time), got 9'],
    [(j) => (j.data.train.size = 50), 'data.train.size must be a multiple of 28'],
    [
      (j) => (j.data.train.tasks = ['colour']),
      'data.train.tasks[0] must be one of color, word, digit, count, order, got "colour"',
    ],
    [(j) => (j.data.train = { kind: 'shards' }), 'data.train.dirs is required'],
    [(j) => (j.precision = 'fp16'), 'precision must be one of "f32", "bf16", got "fp16"'],
    [(j) => (j.train = 'model.**'), 'train must be a non-empty list'],
    [(j) => (j.distill = { topK: 100 }), 'distill.teacher is required'],
    [(j) => (j.model = 3), 'recipe r.json: model must be a JSON object, got 3'],
  ];
  for (const [edit, want] of cases) {
    const msg = errorOf(edit);
    assert.ok(msg.includes(want), `expected …${want}…, got: ${msg}`);
    assert.ok(msg.startsWith('recipe r.json: '), msg);
  }
});

test('unreadable or non-JSON recipe files are InputErrors naming the file', async () => {
  await assert.rejects(
    readRecipe('/nonexistent/r.json'),
    (e: Error) =>
      e instanceof InputError && /recipe \/nonexistent\/r.json: cannot read it \(ENOENT\)/.test(e.message),
  );
  const bad = join(tmpdir(), 'longshot-bad-recipe.json');
  writeFileSync(bad, '{"name": ');
  await assert.rejects(
    readRecipe(bad),
    (e: Error) => e instanceof InputError && e.message.startsWith(`recipe ${bad}: not valid JSON`),
  );
  assert.equal((await readRecipe(TINY_PATH)).name, 'tiny-needle-vamba');
});

test('a shipped recipe opens by name from anywhere, its outputs under ./runs; a file path wins', async () => {
  const byName = await openRecipe('needle-vamba');
  assert.equal(byName.name, 'needle-vamba');
  assert.equal(byName.output.dir, join(process.cwd(), 'runs', 'needle-vamba'));
  assert.equal((await openRecipe(TINY_PATH)).name, 'tiny-needle-vamba');
  await assert.rejects(
    openRecipe('no-such-recipe'),
    (e: Error) => e instanceof InputError && e.message.startsWith('recipe no-such-recipe: cannot read it'),
  );
});
