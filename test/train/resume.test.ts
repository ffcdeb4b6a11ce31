/**
 * Resuming is bit-exact: a run interrupted after step 3 and resumed from its checkpoint ends with the same
 * weights, optimizer state and losses as the run that went straight through (weights, AdamW moments, the
 * step and the RNG — the data position — are in the checkpoint). And accumulation on the real model: two
 * micro-batches of one video each give the step of one batch of both.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { getBackend } from '../../src/runtime/device.js';
import { autogradEngine } from '../../src/train/engine.js';
import { train } from '../../src/train/trainer.js';
import { type RecipeJson, tinyRecipe } from './tiny.js';

const backend = await getBackend('cpu');
const short = (j: RecipeJson) => {
  j.schedule = { steps: 6, warmup: 2, minRatio: 0.1 };
  j.output = { dir: 'x', checkpointEvery: 3, logEvery: 1, evalEvery: 1000 };
  j.data.train.count = 0; // the endless stream: the data position matters
  delete j.data.eval;
};
const losses = (log: string) =>
  readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .map((l) => [l.step, l.loss]);

test('an interrupted run resumed from its checkpoint ends bit-identical to an uninterrupted one', async () => {
  const straight = tinyRecipe(short);
  const a = await train({ recipe: straight, backend, engine: autogradEngine });
  const broken = tinyRecipe(short);
  const first = await train({ recipe: broken, backend, engine: autogradEngine, stopAfter: 3 });
  assert.equal(first.steps, 3);
  const b = await train({ recipe: broken, backend, engine: autogradEngine, resume: true });
  assert.equal(b.startStep, 3);
  assert.equal(b.steps, 6);
  for (const f of ['model.safetensors', 'trainer/optimizer.safetensors'])
    assert.ok(readFileSync(join(a.checkpoint, f)).equals(readFileSync(join(b.checkpoint, f))), f);
  assert.deepEqual(losses(b.log), losses(a.log));
  const state = (dir: string) => JSON.parse(readFileSync(join(dir, 'trainer/state.json'), 'utf8'));
  assert.deepEqual(state(b.checkpoint), state(a.checkpoint));
});

test('resume refuses a directory without a checkpoint, and another recipe’s checkpoint', async () => {
  const r = tinyRecipe(short);
  await assert.rejects(
    train({ recipe: r, backend, engine: autogradEngine, resume: true }),
    /--resume: no checkpoint under/,
  );
  await train({ recipe: r, backend, engine: autogradEngine, stopAfter: 1 });
  await assert.rejects(
    train({ recipe: { ...r, name: 'other' }, backend, engine: autogradEngine, resume: true }),
    /was written by recipe "tiny-needle-vamba", not "other"/,
  );
});

test('accumulation on the model: 2 micro-batches of 1 video = 1 batch of 2 videos (also with checkpointing)', async () => {
  const run = async (accumulate: number, checkpoint = false) => {
    const r = tinyRecipe((j) => {
      short(j);
      j.schedule.steps = 3;
      j.batch = { videos: 2, accumulate, checkpoint };
    });
    const rep = await train({ recipe: r, backend, engine: autogradEngine });
    return { rep, weights: readFileSync(join(rep.checkpoint, 'model.safetensors')) };
  };
  const one = await run(1);
  const two = await run(2, true);
  const f32 = (b: Buffer) => {
    const n = Number(b.readBigUInt64LE(0));
    const body = b.subarray(8 + n);
    return new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  };
  const x = f32(one.weights);
  const y = f32(two.weights);
  assert.equal(x.length, y.length);
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  // Adam's first steps move each weight by about lr (3e-3 here): equal up to f32 summation order, far below a
  // step. (Adam divides by |g|, so the rounding of a gradient near 0 shows as a few hundredths of a step.)
  assert.ok(worst < 1e-4, `largest difference ${worst}`);
  assert.deepEqual(
    losses(one.rep.log).map(([, l]) => Number(l.toFixed(4))),
    losses(two.rep.log).map(([, l]) => Number(l.toFixed(4))),
  );
});

test('steps drawn ahead on render threads train on the same examples: the same losses and weights', async () => {
  const run = async (threads: number) => {
    const r = tinyRecipe((j) => {
      short(j);
      j.model.tokenizer = 'needle-v2';
      j.data.train = { kind: 'needle', variety: 'v2', geometry: 'plain', frames: [8, 16], weights: [1, 1] };
      Object.assign(j.data.train, { size: 56, askings: 2, seed: 3 });
    });
    process.env.LONGSHOT_RENDER_THREADS = String(threads);
    try {
      const rep = await train({ recipe: r, backend, engine: autogradEngine });
      return { rep, weights: readFileSync(join(rep.checkpoint, 'model.safetensors')) };
    } finally {
      delete process.env.LONGSHOT_RENDER_THREADS;
    }
  };
  const inline = await run(0);
  const threaded = await run(2); // 4 steps drawn ahead (NeedleV2Stream.prefetch), not 1
  assert.equal(threaded.rep.steps, 6);
  assert.deepEqual(losses(threaded.rep.log), losses(inline.rep.log));
  assert.ok(threaded.weights.equals(inline.weights));
});

test('echo: the steps of a group train on one draw of videos; a run stopped inside a group resumes bit-identically', async () => {
  const echoed = () =>
    tinyRecipe((j) => {
      short(j);
      j.model.tokenizer = 'needle-v2';
      j.data.train = { kind: 'needle', variety: 'v2', geometry: 'plain', frames: [8, 16], weights: [1, 1] };
      Object.assign(j.data.train, { size: 56, askings: 2, seed: 3 });
      j.batch = { videos: 2, echo: 2 };
    });
  const a = await train({ recipe: echoed(), backend, engine: autogradEngine });
  const log = readFileSync(a.log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  // Steps 1–2, 3–4 and 5–6 are groups: one frame count each.
  for (const g of [0, 2, 4]) assert.equal(log[g].frames, log[g + 1].frames, `steps ${g + 1}–${g + 2}`);
  const broken = echoed();
  await train({ recipe: broken, backend, engine: autogradEngine, stopAfter: 3 });
  const mid = JSON.parse(readFileSync(join(broken.output.dir, 'checkpoint-3/trainer/state.json'), 'utf8'));
  assert.equal(mid.echoOffset, 1, 'step 3 is the first of its group');
  const b = await train({ recipe: broken, backend, engine: autogradEngine, resume: true });
  assert.deepEqual(losses(b.log), losses(a.log));
  assert.ok(
    readFileSync(join(a.checkpoint, 'model.safetensors')).equals(
      readFileSync(join(b.checkpoint, 'model.safetensors')),
    ),
  );
});
