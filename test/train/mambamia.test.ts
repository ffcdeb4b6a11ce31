/**
 * TSTAR-MambaMia trains on CPU: the tiny needle model (test/train/tiny-mambamia.recipe.json: the tiny Vamba
 * recipe's tower, LLM, data and optimizer around a 2-block bidirectional MambaMia compressor with gated
 * aggregation, k = 2; lr 1.5e-3) from scratch on the pool of 8 generated 8-frame videos ends far below the loss any model
 * blind to the video could reach on those askings and answers the pool; its checkpoint is a TSTAR model directory
 * that the family registry opens and whose runner answers the pool's questions as the trainer's evaluation did.
 * recipes/mambamia.json, started from a TSTAR checkpoint, changes every compressor tensor and nothing else. A run
 * resumed from its checkpoint (activation checkpointing replaying the TSTAR forward) ends bit-identical.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { inspectModel } from '../../src/facade/inspect.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { getBackend } from '../../src/runtime/device.js';
import { autogradEngine } from '../../src/train/engine.js';
import { readRecipe } from '../../src/train/recipe.js';
import { train } from '../../src/train/trainer.js';
import { assertLearns, assertResumesBitExact, TINY_MAMBAMIA_PATH, tinyRecipe } from './tiny.js';

test('a tiny TSTAR-MambaMia trained on CPU learns what only the video tells; its checkpoint loads and answers', async () => {
  const cpu = await getBackend('cpu');
  // The final loss below half the blind bound: 0.055 at this seed (the tiny Vamba of learns.test.ts, whose video
  // reaches the LLM uncompressed, goes lower).
  const { report, items } = await assertLearns(
    tinyRecipe(() => {}, TINY_MAMBAMIA_PATH),
    { below: 2 },
  );
  // The compressor trained along with the rest (the recipe trains everything).
  assert.equal(report.trainable, report.parameters);

  // The checkpoint: TSTAR's layout, opened by the registry, answered through the family's runner.
  const dir = report.checkpoint;
  const ck = await Checkpoint.open(dir);
  assert.ok(ck.names().includes('mm_projector.model.layers.1.mixer.A_b_log'));
  assert.ok(ck.names().includes('visual.patch_embed.proj.weight'));
  await ck.close();
  const summary = await inspectModel(dir);
  assert.equal(summary.family.name, 'tstar');
  const runner = await summary.checkpoint.load(cpu, dir);
  const tok = await Tokenizer.fromDir(dir);
  let right = 0;
  try {
    for (const ex of items) {
      // The question as the user typed it: the prompt's text between the video marker and the turn's end.
      const text = tok.decode(ex.prompt);
      const question = text.slice(text.indexOf('<|vision_end|>') + 14, text.lastIndexOf('<|im_end|>'));
      const size = ex.width * ex.height * 3;
      const frames = Array.from({ length: ex.count }, (_, i) => ({
        index: i,
        timestampSec: i,
        width: ex.width,
        height: ex.height,
        data: ex.frames.subarray(i * size, (i + 1) * size),
      }));
      const video = await runner.encode(
        (async function* () {
          yield frames;
        })(),
        {
          kind: 'video',
          timestampsSec: frames.map((f) => f.timestampSec),
          sampling: { sampling: 'uniform', frames: ex.count, fps: 1, maxEdge: ex.width, minEdge: ex.width },
        },
      );
      assert.equal(video.tokens, ((ex.count / 2) * 4) / 2, 'one token per k = 2 merged tokens');
      let answer = '';
      const gen = runner.generate([{ role: 'user', content: question }], video, { maxNewTokens: 6 });
      for (let r = await gen.next(); !r.done; r = await gen.next()) answer += r.value;
      video.dispose();
      if (answer.trim() === tok.decode(ex.answer.slice(0, -1)).trim()) right++;
    }
  } finally {
    runner.dispose();
  }
  assert.ok(
    right >= report.eval.correct - 1,
    `the runner answers ${right} of 8, the trainer's evaluation ${report.eval.correct}`,
  );
  assert.ok(right >= 6, `the loaded model answers ${right} of 8 right`);
});

test('recipes/mambamia.json trains the compressor of a TSTAR checkpoint and nothing else', async () => {
  // A checkpoint to start from: one step of the tiny recipe.
  const cpu = await getBackend('cpu');
  const tiny = tinyRecipe((j) => {
    j.schedule = { steps: 1, warmup: 0, minRatio: 1 };
    delete j.data.eval;
  }, TINY_MAMBAMIA_PATH);
  const dir = (await train({ recipe: tiny, backend: cpu, engine: autogradEngine })).checkpoint;
  // The shipped recipe from it, 2 steps of 2 accumulated videos of the tiny data.
  const shipped = await readRecipe(join(import.meta.dirname, '..', '..', 'recipes', 'mambamia.json'));
  const r2 = await train({
    recipe: {
      ...shipped,
      model: { ...shipped.model, from: dir },
      data: tiny.data,
      schedule: { steps: 2, warmup: 0, minRatio: 1 },
      batch: { ...shipped.batch, videos: 2, accumulate: 2 },
      output: { ...shipped.output, dir: mkdtempSync(join(tmpdir(), 'longshot-train-')) },
    },
    backend: cpu,
    engine: autogradEngine,
  });
  const before = await Checkpoint.open(dir);
  const after = await Checkpoint.open(r2.checkpoint);
  const unchanged: string[] = [];
  let compressor = 0;
  try {
    assert.deepEqual(after.names().sort(), before.names().sort());
    for (const n of before.names()) {
      const [a, b] = [await before.read(n), await after.read(n)];
      const same = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(
        Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength),
      );
      if (n.startsWith('mm_projector.')) {
        if (same) unchanged.push(n);
        compressor += a.shape.reduce((x, y) => x * y, 1);
      } else assert.ok(same, `${n} is frozen by recipes/mambamia.json but changed`);
    }
  } finally {
    await before.close();
    await after.close();
  }
  assert.equal(r2.trainable, compressor);
  assert.ok(r2.trainable < r2.parameters / 2);
  assert.deepEqual(unchanged, [], 'every compressor tensor trains');
});

test('a TSTAR-MambaMia run (activation checkpointing on) resumed from its checkpoint ends bit-identical', async () => {
  const { straight, resumed } = await assertResumesBitExact((j) => {
    j.schedule = { steps: 4, warmup: 1, minRatio: 0.1 };
    j.batch = { videos: 2, accumulate: 2, checkpoint: true };
    j.output = { dir: 'x', checkpointEvery: 2, logEvery: 1, evalEvery: 1000 };
    j.data.train.count = 0; // the endless stream: the data position matters
    delete j.data.eval;
  }, TINY_MAMBAMIA_PATH);
  assert.equal(resumed.finalLoss, straight.finalLoss);
});
