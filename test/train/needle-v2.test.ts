/**
 * The v2 needle data streamed by `longshot train` (recipes/needle-*-v2.json, issue 27): the mix the recipe
 * says, over many draws; askings per video; render threads give the main thread's examples; the shipped v1
 * Vamba's token rows remapped to tokenizer v2 and a step of the v2 recipe from it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { NOT_SHOWN } from '../../src/needle/tasks.js';
import { needleTokenizerJson, needleVocabulary } from '../../src/needle/tokenizer.js';
import { getBackend } from '../../src/runtime/device.js';
import { bf16ToF32, f32ToBf16 } from '../../src/runtime/dtype.js';
import { drawLength, type Example, openSource } from '../../src/train/data.js';
import { autogradEngine } from '../../src/train/engine.js';
import { type NeedleSpec, varietyPlan } from '../../src/train/needle-v2.js';
import { parseRecipe, readRecipe } from '../../src/train/recipe.js';
import { learningRate } from '../../src/train/schedule.js';
import { train } from '../../src/train/trainer.js';
import { rowSources, withTokenizer } from '../../src/train/vocab.js';
import { Random } from '../../src/util/random.js';

const root = join(import.meta.dirname, '../..');
const ctx = { tokenizer: null, prompt: (q: string) => q };
const recipeSpec = async (name: string): Promise<NeedleSpec> => {
  const r = await readRecipe(join(root, 'recipes', `${name}.json`));
  assert.equal(r.data.train.kind, 'needle');
  return r.data.train as NeedleSpec;
};

test('the v2 recipes stream the v2 mix: tasks, unanswerable, backgrounds, wordings, lengths and sizes over 4000 draws', async () => {
  const spec = await recipeSpec('needle-vamba-v2');
  assert.equal(spec.variety, 'v2');
  assert.equal(spec.tokenizer, 2);
  const src = await openSource(spec, ctx);
  const rng = new Random(11);
  const n = 4000;
  const count = new Map<string, number>();
  const add = (k: string) => count.set(k, (count.get(k) ?? 0) + 1);
  const share = (k: string) => (count.get(k) ?? 0) / n;
  let nonOrder = 0;
  for (let i = 0; i < n; i++) {
    // As the stream draws: a length by weight, then each video's seed.
    const frames = drawLength(rng, src.lengths);
    const { meta, s } = varietyPlan(spec, rng.int(0, 2 ** 31), frames, `v${i}`);
    add(`task:${meta.task}`);
    add(`bg:${meta.background}`);
    add(`phrasing:${meta.phrasing}`);
    add(`frames:${frames}`);
    if (meta.task !== 'order') nonOrder++;
    if (meta.unanswerable) {
      add('unanswerable');
      assert.ok(s.answer === NOT_SHOWN || s.answer === '0');
    }
    if (meta.width * meta.height > 112 * 112) add(frames > 128 ? 'large-long' : 'large');
    if (frames > 128)
      assert.ok(meta.width * meta.height <= 176 * 144, `${frames} frames at ${meta.width}×${meta.height}`);
  }
  await src.close();
  const near = (got: number, want: number, tol: number, what: string) =>
    assert.ok(Math.abs(got - want) < tol, `${what}: ${got.toFixed(3)}, expected ${want} ± ${tol}`);
  // Tasks by the recipe's task weights (counting twice as often as each other task).
  assert.deepEqual(spec.taskWeights, [1, 1, 1, 2, 1]);
  const tasksTotal = spec.taskWeights.reduce((a, w) => a + w, 0);
  for (const [i, t] of spec.tasks.entries())
    near(share(`task:${t}`), spec.taskWeights[i] / tasksTotal, 0.025, t);
  // 20% of the questions other than 'order' ask about something never shown.
  near((count.get('unanswerable') ?? 0) / nonOrder, 0.2, 0.025, 'unanswerable');
  // 80% of videos over one of the ten varied backgrounds (8% each), the rest the generator's scenes.
  near(share('bg:generator'), 0.2, 0.025, 'generator scenes');
  for (const b of [
    'bars',
    'smpte',
    'plasma',
    'rgbnoise',
    'flat',
    'texture',
    'gradient',
    'checker',
    'stripes',
    'noise',
  ])
    near(share(`bg:${b}`), 0.08, 0.02, b);
  near(share('phrasing:varied'), 0.85, 0.025, 'varied wordings');
  // Lengths by the recipe's weights.
  const total = spec.weights.reduce((a, w) => a + w, 0);
  for (const [i, f] of spec.frames.entries())
    near(share(`frames:${f}`), spec.weights[i] / total, 0.025, `${f} frames`);
  assert.ok(share('large') > 0.3, 'short videos are drawn at larger sizes too');
  assert.ok(share('large-long') > 0.01, 'long videos at 176×144 or 160×120 too');
});

test('each video is asked `askings` times, worded anew and alternating the form; threads give the same examples', async () => {
  const spec: NeedleSpec = { ...(await recipeSpec('needle-vamba-v2')), size: 56, askings: 2 };
  const src = await openSource(spec, ctx);
  const rng = new Random(3);
  const ex = await src.drawBatch!(rng, 16, 5);
  assert.equal(ex.length, 5);
  // Videos 0–1, 2–3 and 4 (the last asked once).
  assert.equal(ex[0].frames, ex[1].frames);
  assert.equal(ex[2].frames, ex[3].frames);
  assert.notDeepEqual(ex[1].frames, ex[2].frames);
  assert.deepEqual(ex[0].meta, ex[1].meta);
  assert.notEqual(ex[0].group.split('/')[1], ex[1].group.split('/')[1]);
  assert.equal(ex[0].frames.length, 16 * 56 * 56 * 3);
  assert.equal(src.prefetch, 1, 'rendered inline: one step ahead');
  const stateAfter = rng.state;
  await src.close();

  process.env.LONGSHOT_RENDER_THREADS = '2';
  try {
    const threaded = await openSource(spec, ctx);
    assert.match(threaded.description, /rendered on 2 threads/);
    assert.equal(threaded.prefetch, 4, 'two steps ahead a thread');
    const r2 = new Random(3);
    const ex2 = await threaded.drawBatch!(r2, 16, 5);
    assert.equal(r2.state, stateAfter);
    assert.deepEqual(
      ex2.map((e) => [e.prompt, e.answer, e.group, e.meta]),
      ex.map((e) => [e.prompt, e.answer, e.group, e.meta]),
    );
    for (let i = 0; i < 5; i++) assert.ok(Buffer.from(ex2[i].frames).equals(Buffer.from(ex[i].frames)));
    const fixed = await threaded.fixed(3);
    assert.equal(fixed.length, 3);
    await threaded.close();
  } finally {
    delete process.env.LONGSHOT_RENDER_THREADS;
  }
});

test('v2 keys are checked: weights per length, v2-only keys, tokenizer v2 by default', () => {
  const base = {
    name: 'x',
    model: { family: 'vamba', from: 'scratch', config: {} },
    data: { train: { kind: 'needle', frames: [16, 32], weights: [1, 0.5], variety: 'v2' } },
    optimizer: { lr: 1e-3 },
    schedule: { steps: 1 },
    batch: { videos: 1 },
    output: { dir: 'o' },
  };
  const spec = parseRecipe(base, 'r.json', '/').data.train as NeedleSpec;
  assert.equal(spec.tokenizer, 2);
  assert.deepEqual(spec.weights, [1, 0.5]);
  assert.equal(spec.scenes, 'mix');
  // Plain geometry (the TimeViper and MambaMia recipes): 112×112 frames, 2-frame needles, whatever else is drawn.
  const plain = { ...spec, geometry: 'plain' as const };
  for (let seed = 0; seed < 200; seed++) {
    const { meta, s } = varietyPlan(plain, seed, 32, 'p');
    assert.deepEqual([meta.width, meta.height, meta.needleFrames, s.fps], [112, 112, 2, 2]);
  }
  const bad = (train: object, re: RegExp) =>
    assert.throws(() => parseRecipe({ ...base, data: { train } }, 'r.json', '/'), re);
  bad(
    { kind: 'needle', frames: [16, 32], weights: [1] },
    /data\.train\.weights must give one weight per entry/,
  );
  bad({ kind: 'needle', frames: [16], askings: 2 }, /data\.train\.askings is only for "variety": "v2"/);
  bad(
    { kind: 'needle', frames: [16], tasks: ['color', 'count'], taskWeights: [1] },
    /data\.train\.taskWeights must give one weight per entry of tasks \(2\), got 1/,
  );
  bad(
    { kind: 'needle', frames: [16], tasks: ['count'], taskWeights: [0] },
    /taskWeights must hold a weight above 0/,
  );
  assert.deepEqual(spec.taskWeights, [1, 1, 1, 1, 1], 'all tasks alike by default');
  bad({ kind: 'needle', frames: [16], variety: 'v2', scenes: 'tv' }, /data\.train\.scenes must be one of/);
});

test('learningRate: with a time budget the cosine follows whichever of steps and time is further', () => {
  const s = { lr: 1, warmup: 0, steps: 1000, minRatio: 0 };
  assert.equal(learningRate(s, 10, 0.5), 0.5);
  assert.equal(learningRate(s, 500, 0.1), 0.5);
  assert.equal(learningRate(s, 10, 1.5), 0);
});

test('rowSources: a token keeps the row of the same old token, else of its capitalised form, else the mean (-1)', () => {
  const old = { '[UNK]': 0, What: 1, colour: 2, A: 3 };
  const next = { '[UNK]': 0, what: 1, colour: 2, hue: 3, A: 4 };
  assert.deepEqual([...rowSources(old, next)], [0, 1, 2, -1, 3]);
});

test('a v1 checkpoint with tokenizer v2: token rows remapped (F32 and BF16), the rest unchanged, vocab_size set', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'v2-'));
  try {
    // A checkpoint with tokenizer v1 whose token rows say which row they are: row i is [i, i + 0.5].
    const v1 = JSON.stringify(needleTokenizerJson(1));
    const oldVocab = JSON.parse(v1).model.vocab as Record<string, number>;
    const rows = Object.keys(oldVocab).length;
    const ck = join(dir, 'v1');
    await mkdir(ck);
    const emb = Float32Array.from({ length: rows * 2 }, (_, k) => Math.floor(k / 2) + (k % 2) * 0.5);
    const head = Uint16Array.from(emb, (x) => f32ToBf16(x));
    const other = Float32Array.from([1, 2, 3]);
    await saveSafetensors(join(ck, 'model.safetensors'), {
      'model.embed_tokens.weight': { dtype: 'F32', shape: [rows, 2], data: emb },
      'lm_head.weight': { dtype: 'BF16', shape: [rows, 2], data: head },
      'model.norm.weight': { dtype: 'F32', shape: [3], data: other },
    });
    await writeFile(join(ck, 'config.json'), JSON.stringify({ model_type: 'qwen2_vl', vocab_size: rows }));
    await writeFile(join(ck, 'tokenizer.json'), v1);
    const v2 = JSON.stringify(needleTokenizerJson(2));
    const newVocab = JSON.parse(v2).model.vocab as Record<string, number>;
    const r = await withTokenizer(ck, { 'tokenizer.json': v2 }, join(dir, 'remapped'));
    assert.ok(r);
    assert.equal(r.tokens, Object.keys(newVocab).length);
    assert.equal(JSON.parse(await readFile(join(r.dir, 'config.json'), 'utf8')).vocab_size, r.tokens);
    assert.equal(await readFile(join(r.dir, 'tokenizer.json'), 'utf8'), v2);
    const f = await SafetensorsFile.open(join(r.dir, 'model.safetensors'));
    try {
      const e = (await f.read('model.embed_tokens.weight')).data as Float32Array;
      const h = (await f.read('lm_head.weight')).data as Uint16Array;
      const row = (i: number) => [e[2 * i], e[2 * i + 1]];
      assert.deepEqual(row(newVocab.what), [oldVocab.What, oldVocab.What + 0.5]);
      assert.deepEqual(row(newVocab.colour), [oldVocab.colour, oldVocab.colour + 0.5]);
      assert.deepEqual(row(newVocab['<|im_end|>']), [oldVocab['<|im_end|>'], oldVocab['<|im_end|>'] + 0.5]);
      // A word v1 never had starts at the mean row: the mean of 0 … rows-1.
      assert.deepEqual(row(newVocab.hue), [(rows - 1) / 2, (rows - 1) / 2 + 0.5]);
      assert.equal(bf16ToF32(h[2 * newVocab.what]), oldVocab.What);
      assert.deepEqual([...((await f.read('model.norm.weight')).data as Float32Array)], [1, 2, 3]);
    } finally {
      await f.close();
    }
    // The same ids (TimeViper's tokenizer adds specials after them): nothing to remap.
    assert.equal(await withTokenizer(r.dir, { 'tokenizer.json': v2 }, join(dir, 'again')), null);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a step of recipes/needle-vamba-v2.json from its model.from runs and saves a tokenizer-v2 checkpoint', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'v2-'));
  try {
    const recipe = await readRecipe(join(root, 'recipes/needle-vamba-v2.json'));
    const spec = recipe.data.train as NeedleSpec;
    const report = await train({
      recipe: {
        ...recipe,
        data: { train: { ...spec, frames: [16], weights: [1] }, eval: null },
        batch: { ...recipe.batch, videos: 2, baseFrames: null },
        schedule: { ...recipe.schedule, steps: 1 },
        output: { ...recipe.output, dir: join(dir, 'run') },
      },
      backend: await getBackend('cpu'),
      engine: autogradEngine,
    });
    assert.equal(report.steps, 1);
    assert.ok(Number.isFinite(report.finalLoss));
    const saved = JSON.parse(await readFile(join(report.checkpoint, 'config.json'), 'utf8'));
    // The special tokens, then the words of version 2.
    assert.equal(saved.vocab_size, 7 + needleVocabulary(2).length);
    const tok = JSON.parse(await readFile(join(report.checkpoint, 'tokenizer.json'), 'utf8'));
    assert.equal(tok.normalizer.type, 'Lowercase');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('longshot train --time-schedule needs --max-seconds and refuses --resume', () => {
  const run = (...args: string[]) =>
    spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/run.ts', 'train', 'recipes/needle-vamba-v2.json', ...args],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
  const a = run('--time-schedule', '--device', 'cpu');
  assert.notEqual(a.status, 0);
  assert.match(a.stderr, /--time-schedule needs --max-seconds/);
  const b = run('--time-schedule', '--max-seconds', '5', '--resume', '--device', 'cpu');
  assert.notEqual(b.status, 0);
  assert.match(b.stderr, /--time-schedule cannot resume a run/);
});

test('echo: one draw of videos for several steps, each step asking them anew; its first step is the step without echo', async () => {
  const spec: NeedleSpec = { ...(await recipeSpec('needle-vamba-v2')), size: 56, askings: 2 };
  const src = await openSource(spec, ctx);
  const once = await src.drawBatch!(new Random(5), 16, 3);
  const rng = new Random(5);
  const steps = await src.drawEchoed!(rng, 16, 3, 3);
  assert.equal(steps.length, 3);
  for (const s of steps) assert.equal(s.length, 3);
  const asked = (ex: Example[]) => ex.map((e) => [e.prompt, e.answer, e.group, e.meta]);
  assert.deepEqual(asked(steps[0]), asked(once));
  // The same two videos (askings 0–1 of the first, the one asking of the second) in every step …
  for (const s of steps) {
    assert.equal(s[0].frames, steps[0][0].frames);
    assert.equal(s[1].frames, steps[0][0].frames);
    assert.equal(s[2].frames, steps[0][2].frames);
    assert.deepEqual(s[2].meta, steps[0][2].meta);
  }
  // … worded anew: six askings of the first video, no two prompts the same.
  const prompts = steps.flatMap((s) => s.slice(0, 2)).map((e) => e.prompt.join(','));
  assert.equal(new Set(prompts).size, 6);
  // The RNG moved as for one step: the data position counts videos drawn, not steps.
  const r1 = new Random(5);
  await src.drawBatch!(r1, 16, 3);
  assert.equal(rng.state, r1.state);
  await src.close();
});

test('longshot train --lr replaces the recipe’s peak rate; a rate that is not > 0 is a usage error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'longshot-lr-'));
  const run = (...args: string[]) =>
    spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/run.ts',
        'train',
        'test/train/tiny-vamba.recipe.json',
        '--device',
        'cpu',
        ...args,
      ],
      { cwd: root, encoding: 'utf8', timeout: 120_000 },
    );
  try {
    const firstLr = async (out: string) =>
      JSON.parse((await readFile(join(out, 'log.jsonl'), 'utf8')).split('\n')[0]).lr as number;
    const recipe = JSON.parse(await readFile(join(root, 'test/train/tiny-vamba.recipe.json'), 'utf8'));
    assert.equal(run('--steps', '1', '--out', join(dir, 'a'), '--json').status, 0);
    assert.equal(run('--steps', '1', '--out', join(dir, 'b'), '--lr', '0.5', '--json').status, 0);
    const [a, b] = [await firstLr(join(dir, 'a')), await firstLr(join(dir, 'b'))];
    assert.ok(Math.abs(b / a - 0.5 / recipe.optimizer.lr) < 1e-6, `step-1 rates ${a} and ${b}`);
    const bad = run('--lr', '0');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--lr must be a number > 0, got '0'/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
