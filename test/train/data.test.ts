import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { makeSample } from '../../src/needle/tasks.js';
import { needleFrames, needleTokenizer } from '../../src/needle/training.js';
import { drawLength, openSource, parseJsonlLine } from '../../src/train/data.js';
import { Random } from '../../src/util/random.js';

const ROOT = join(import.meta.dirname, '..', '..');
const ctx = { tokenizer: null, prompt: (q: string) => q };

test('exported shards read back: frames as the generator renders them, every asking with its answer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'longshot-shards-'));
  execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      'tools/needle/export_training_data.ts',
      '--out',
      dir,
      '--count',
      '3',
      '--frames',
      '8,16',
      '--size',
      '56',
      '--seed',
      '3',
    ],
    { cwd: ROOT, stdio: 'ignore' },
  );
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
  const src = await openSource({ kind: 'shards', dirs: [dir], count: 0 }, ctx);
  const all = await src.fixed(0);
  assert.equal(all.length, 3); // v1: one asking per video
  const tok = needleTokenizer(1);
  const imEnd = tok.tokenToId('<|im_end|>');
  // Ordered by frame count, then as exported.
  const metas = [...index.samples].sort(
    (a: { frames: number }, b: { frames: number }) => a.frames - b.frames,
  );
  metas.forEach(
    (
      m: {
        i: number;
        seed: number;
        frames: number;
        task: string;
        answer: string;
        letter: string;
        mcq: boolean;
      },
      k: number,
    ) => {
      const ex = all[k];
      const s = makeSample(m.seed, `train-${m.i}`, {
        frames: m.frames,
        fps: 2,
        width: 56,
        height: 56,
        needleFrames: 2,
        task: m.task as never,
      });
      assert.deepEqual(ex.frames, needleFrames(s, 56));
      assert.equal(ex.count, m.frames);
      assert.equal(ex.answer.at(-1), imEnd);
      assert.equal(tok.decode(ex.answer.slice(0, -1)).trim(), m.mcq ? m.letter : m.answer);
      assert.ok(tok.decode(ex.prompt).includes('<|vision_start|> <|vision_end|>')); // word-piece decoding spaces tokens
      assert.equal(ex.group, `${m.task}/${m.mcq ? 'mcq' : 'short'}`);
    },
  );
  assert.deepEqual(
    src.lengths.map((l) => l.frames),
    [...new Set(metas.map((m: { frames: number }) => m.frames))],
  );
  const drawn = await src.draw(new Random(1), all[0].count);
  assert.equal(drawn.count, all[0].count);
  await src.close();
  await assert.rejects(
    openSource({ kind: 'shards', dirs: [join(dir, 'nope')], count: 0 }, ctx),
    /no readable index.json/,
  );
});

test('the needle stream: the trainer’s RNG is the data position; a pool repeats its videos', async () => {
  const spec = {
    kind: 'needle' as const,
    frames: [8, 16],
    size: 56,
    tasks: ['digit' as const],
    taskWeights: [1],
    tokenizer: 1 as const,
    seed: 5,
    count: 0,
    weights: [1, 1],
    variety: 'v1' as const,
    phrasing: 'mix' as const,
    unanswerable: 0,
    scenes: 'mix' as const,
    geometry: 'varied' as const,
    askings: 1,
  };
  const src = await openSource(spec, ctx);
  const a = new Random(7);
  const b = new Random(7);
  const x = await src.draw(a, 8);
  const y = await src.draw(b, 8);
  assert.deepEqual(x, y);
  const z = await src.draw(a, 8);
  assert.notDeepEqual(z.frames, x.frames);
  const pool = await openSource({ ...spec, count: 2 }, ctx);
  const seen = new Set<string>();
  const r = new Random(1);
  for (let i = 0; i < 12; i++) seen.add((await pool.draw(r, drawLength(r, pool.lengths))).prompt.join(','));
  assert.ok(seen.size <= 2);
  const fixed = await pool.fixed(0);
  assert.equal(fixed.length, 2);
  assert.ok([...seen].every((p) => fixed.some((f) => f.prompt.join(',') === p)));
});

test('drawLength follows the weights', () => {
  const r = new Random(3);
  const counts = new Map<number, number>();
  for (let i = 0; i < 4000; i++) {
    const f = drawLength(r, [
      { frames: 16, weight: 1 },
      { frames: 64, weight: 3 },
    ]);
    counts.set(f, (counts.get(f) ?? 0) + 1);
  }
  assert.ok(Math.abs(counts.get(64)! / 4000 - 0.75) < 0.03);
});

test('JSONL video instructions: LLaVA-Video lines parse, bad ones are errors naming the line', async () => {
  const line = JSON.stringify({
    video: 'clips/a.mp4',
    conversations: [
      { from: 'human', value: '<video>\nWhat is the person holding?' },
      { from: 'gpt', value: 'A red umbrella.' },
      { from: 'human', value: 'And then?' },
    ],
  });
  assert.deepEqual(parseJsonlLine(line, 'd.jsonl:1', '/data'), {
    video: '/data/clips/a.mp4',
    question: 'What is the person holding?',
    answer: 'A red umbrella.',
  });
  const alt = JSON.stringify({
    video: '/abs/b.mp4',
    conversations: [
      { from: 'user', value: 'Q?' },
      { from: 'assistant', value: 'A.' },
    ],
  });
  assert.equal(parseJsonlLine(alt, 'x', '/data').video, '/abs/b.mp4');
  for (const [bad, want] of [
    ['{', 'd.jsonl:3: not valid JSON'],
    ['{"conversations": []}', 'd.jsonl:3: needs "video"'],
    [
      '{"video": "a.mp4", "conversations": [{"from": "human", "value": "Q"}]}',
      'needs a human turn followed by a gpt turn',
    ],
  ])
    assert.throws(
      () => parseJsonlLine(bad, 'd.jsonl:3', '/'),
      (e: Error) => e instanceof InputError && e.message.includes(want),
    );
  const file = join(mkdtempSync(join(tmpdir(), 'longshot-jsonl-')), 'd.jsonl');
  writeFileSync(file, `${line}\n`);
  await assert.rejects(
    openSource({ kind: 'jsonl', path: file, frames: 8, size: 112, count: 0 }, ctx),
    /JSONL data needs the model's tokenizer/,
  );
});

test('pickWeighted: equal weights draw as pick does (recipes without taskWeights keep their data); weights set the shares', () => {
  const items = ['a', 'b', 'c', 'd', 'e'];
  const a = new Random(21);
  const b = new Random(21);
  for (let i = 0; i < 2000; i++) assert.equal(a.pickWeighted(items, [1, 1, 1, 1, 1]), b.pick(items));
  const r = new Random(4);
  const n = 20000;
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const x = r.pickWeighted(items, [1, 0, 1, 2, 1]);
    seen.set(x, (seen.get(x) ?? 0) + 1);
  }
  assert.equal(seen.get('b'), undefined, 'weight 0: never');
  for (const [x, want] of [
    ['a', 0.2],
    ['d', 0.4],
    ['e', 0.2],
  ] as const)
    assert.ok(Math.abs((seen.get(x) ?? 0) / n - want) < 0.015, `${x}: ${(seen.get(x) ?? 0) / n}`);
});
