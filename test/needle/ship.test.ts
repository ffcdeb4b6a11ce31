/**
 * tools/needle/ship.ts: the results table of bench/gpu/ship-train.sh from `needle eval --json` and `train --json`
 * outputs, issue 27's aims marked, and the model card's block written (then replaced, not duplicated).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { average, bf16Copy, collect, install, table, updateCard } from '../../tools/needle/ship.js';

const report = (set: string, correct: number, total: number, unanswerable: [number, number]) => ({
  model: 'runs/ship/vamba/model',
  architecture: 'vamba',
  data: `/tmp/ship-heldout/${set}/questions.jsonl`,
  correct,
  total,
  accuracy: correct / total,
  byTask: { color: { correct, total, accuracy: correct / total } },
  byForm: { short: { correct: 1, total: total / 2 }, mcq: { correct: correct - 1, total: total / 2 } },
  unanswerable: { correct: unanswerable[0], total: unanswerable[1] },
  byLength: {},
  items: [],
});

test('results: sets by model, the aims met or not, the run; the card block is replaced in place', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ship-'));
  try {
    await mkdir(join(dir, 'vamba'));
    await mkdir(join(dir, 'timeviper'));
    const lines = (...r: object[]) => r.map((x) => JSON.stringify(x)).join('\n');
    await writeFile(
      join(dir, 'vamba', 'eval.jsonl'),
      lines(
        report('1024', 17, 20, [0, 0]),
        report('16-64', 110, 120, [3, 4]),
        report('unanswerable', 60, 80, [60, 80]),
      ),
    );
    await writeFile(
      join(dir, 'vamba', 'train.json'),
      JSON.stringify({
        steps: 900,
        startStep: 0,
        seconds: 380.4,
        stepsPerSecond: 2.366,
        finalLoss: 0.0812,
        device: 'cuda',
      }),
    );
    await writeFile(
      join(dir, 'timeviper', 'eval.jsonl'),
      lines({ ...report('16-64', 30, 120, [0, 4]), architecture: 'timeviper' }),
    );
    const r = await collect(dir);
    assert.deepEqual(Object.keys(r.models), ['vamba', 'timeviper']);
    assert.equal(r.models.timeviper!.train, null);
    assert.deepEqual(r.models.vamba!.sets['16-64'].mcq, { correct: 109, total: 60 });
    const md = table(r);
    const row = (name: string) => md.split('\n').find((l) => l.startsWith(`| ${name} |`));
    // In the order of the sets, not of the file; 110/120 meets ≥ 90%, 17/20 meets ≥ 80%, 60/80 misses ≥ 80%.
    assert.ok(md.indexOf('| 16-64 |') < md.indexOf('| 1024 |'));
    assert.equal(row('16-64'), '| 16-64 | 91.7% (110/120) | 25.0% (30/120) | ≥ 90% ✓ |');
    assert.equal(row('1024'), '| 1024 | 85.0% (17/20) | – | ≥ 80% ✓ |');
    assert.equal(row('unanswerable'), '| unanswerable | 75.0% (60/80) | – | ≥ 80% ✗ |');
    assert.equal(
      row('unanswerable questions (all sets)'),
      '| unanswerable questions (all sets) | 75.0% (63/84) | 0.0% (0/4) |  |',
    );
    assert.equal(row('steps (this run)'), '| steps (this run) | 0 → 900 | – |  |');

    const card = '# needle-vamba-tiny\n\nText.\n\n## First run\n\nMore.\n';
    const once = updateCard(card, 'vamba', r);
    assert.ok(once.startsWith(card.trimEnd()));
    assert.match(once, /## Trained by longshot train\n\n<!-- ship-results:vamba -->/);
    assert.match(once, /\| 16-64 \| 91\.7% \(110\/120\) \| ≥ 90% ✓ \|/);
    // The Vamba block has Vamba's column only.
    assert.doesNotMatch(once, /needle-timeviper-tiny/);
    const again = updateCard(once, 'vamba', { ...r, written: '2027-01-02T00:00:00Z' });
    assert.equal(again.split('<!-- ship-results:vamba -->').length, 2);
    assert.match(again, /results of 2027-01-02/);
    const both = updateCard(again, 'timeviper', r);
    assert.equal(both.split('## Trained by longshot train').length, 2);
    assert.match(
      both,
      /<!-- ship-results:timeviper -->[\s\S]*25\.0% \(30\/120\)[\s\S]*<!-- \/ship-results:timeviper -->/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('install copies the model files (not the trainer state) into models/ and writes the card block', async () => {
  const root = await mkdtemp(join(tmpdir(), 'ship-'));
  try {
    const ck = join(root, 'runs/ship/timeviper/model');
    await mkdir(join(ck, 'trainer'), { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'generation_config.json'])
      await writeFile(join(ck, f), `${f} of the run`);
    const bf16 = { dtype: 'BF16', shape: [2], data: Uint16Array.of(0x3f80, 0xc000) } as const;
    await saveSafetensors(join(ck, 'model.safetensors'), { w: bf16 });
    await writeFile(join(ck, 'trainer', 'state.json'), '{}');
    await mkdir(join(root, 'docs/models'), { recursive: true });
    await mkdir(join(root, 'models/needle-timeviper-tiny'), { recursive: true });
    await writeFile(join(root, 'models/needle-timeviper-tiny/old.bin'), 'old');
    await writeFile(join(root, 'docs/models/needle-timeviper-tiny.md'), '# needle-timeviper-tiny\n\nText.\n');
    const results = join(root, 'results.json');
    const set = {
      correct: 96,
      total: 120,
      short: {},
      mcq: {},
      unanswerable: { correct: 0, total: 0 },
      byTask: {},
    };
    await writeFile(
      results,
      JSON.stringify({
        written: '2027-01-01T00:00:00Z',
        models: { timeviper: { train: null, sets: { '16-64': set } } },
      }),
    );
    await assert.rejects(install('mambamia', ck, results, false, root), /holds no results for mambamia/);
    await install('timeviper', ck, results, true, root);
    assert.deepEqual(await readdir(join(root, 'models/needle-timeviper-tiny')), ['old.bin']);
    await install('timeviper', ck, results, false, root);
    const target = join(root, 'models/needle-timeviper-tiny');
    assert.deepEqual((await readdir(target)).sort(), [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
    ]);
    assert.deepEqual(
      await readFile(join(target, 'model.safetensors')),
      await readFile(join(ck, 'model.safetensors')),
    );
    const card = await readFile(join(root, 'docs/models/needle-timeviper-tiny.md'), 'utf8');
    assert.match(card, /\| 16-64 \| 80\.0% \(96\/120\) \|/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('bf16: f32 weights (a CPU run) rounded to bf16, ties to even, other dtypes kept; install refuses f32', async () => {
  const root = await mkdtemp(join(tmpdir(), 'ship-'));
  try {
    const ck = join(root, 'run');
    await mkdir(ck);
    // 1 + 2⁻⁸ is halfway between bf16's 1 and 1 + 2⁻⁷: to even (1); 1 + 3·2⁻⁸ halfway to 1 + 2⁻⁶: up.
    const w = Float32Array.of(1.5, -2, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3e-39);
    await saveSafetensors(
      join(ck, 'model.safetensors'),
      {
        w: { dtype: 'F32', shape: [5], data: w },
        ids: { dtype: 'I32', shape: [2], data: Int32Array.of(7, -1) },
      },
      { metadata: { format: 'pt' } },
    );
    await writeFile(
      join(ck, 'config.json'),
      JSON.stringify({
        model_type: 'vamba',
        torch_dtype: 'float32',
        text_config: { torch_dtype: 'float32', n: 2 },
      }),
    );
    await writeFile(join(ck, 'tokenizer.json'), '{"t":1}');
    await writeFile(
      join(root, 'results.json'),
      JSON.stringify({ written: 'x', models: { vamba: { train: null, sets: {} } } }),
    );
    await assert.rejects(
      install('vamba', ck, join(root, 'results.json'), true, root),
      /1 f32 tensors \(w, …\); the shipped models are bf16: run `ship.ts bf16/,
    );
    const out = join(root, 'bf16');
    await bf16Copy(ck, out);
    await using file = await SafetensorsFile.open(join(out, 'model.safetensors'));
    const got = await file.read('w');
    assert.equal(got.dtype, 'BF16');
    // bf16 bits by hand: 1.5 = 0x3fc0, −2 = 0xc000, 1 = 0x3f80, 1 + 2⁻⁶ = 0x3f82, 3e-39 (subnormal) = 0x0021.
    assert.deepEqual([...(got.data as Uint16Array)], [0x3fc0, 0xc000, 0x3f80, 0x3f82, 0x0021]);
    const ids = await file.read('ids');
    assert.equal(ids.dtype, 'I32');
    assert.deepEqual([...(ids.data as Int32Array)], [7, -1]);
    assert.deepEqual(file.metadata, { format: 'pt' });
    assert.deepEqual(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')), {
      model_type: 'vamba',
      torch_dtype: 'bfloat16',
      text_config: { torch_dtype: 'bfloat16', n: 2 },
    });
    assert.equal(await readFile(join(out, 'tokenizer.json'), 'utf8'), '{"t":1}');
    await install('vamba', out, join(root, 'results.json'), true, root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("average: (1 − w)·a + w·b in bf16 with b's files; a's token rows follow b's tokenizer; other models refused", async () => {
  const root = await mkdtemp(join(tmpdir(), 'ship-'));
  try {
    const tokenizer = (vocab: Record<string, number>) => JSON.stringify({ model: { vocab } });
    const checkpoint = async (
      dir: string,
      vocab: Record<string, number>,
      tensors: Record<string, [number[], number[]]>,
    ) => {
      await mkdir(dir);
      await writeFile(join(dir, 'tokenizer.json'), tokenizer(vocab));
      await writeFile(join(dir, 'config.json'), JSON.stringify({ vocab_size: 3, torch_dtype: 'float32' }));
      const t = Object.fromEntries(
        Object.entries(tensors).map(([n, [shape, v]]) => [
          n,
          { dtype: 'F32' as const, shape, data: Float32Array.from(v) },
        ]),
      );
      await saveSafetensors(join(dir, 'model.safetensors'), t);
    };
    // a knows x and y at ids 0 and 1; b has y, x, z at 0, 1, 2: a's rows move to y ← 1, x ← 0, z ← their mean.
    const a = join(root, 'a');
    const b = join(root, 'b');
    await checkpoint(
      a,
      { x: 0, y: 1 },
      {
        'model.embed_tokens.weight': [
          [2, 2],
          [1, 2, 3, 4],
        ],
        w: [[2], [1, -2]],
      },
    );
    await checkpoint(
      b,
      { y: 0, x: 1, z: 2 },
      {
        'model.embed_tokens.weight': [
          [3, 2],
          [5, 5, 5, 5, 5, 5],
        ],
        w: [[2], [3, 2]],
      },
    );
    const out = join(root, 'avg');
    await average(a, b, 0.25, out);
    await using file = await SafetensorsFile.open(join(out, 'model.safetensors'));
    const got = async (n: string) => {
      const t = await file.read(n);
      assert.equal(t.dtype, 'BF16');
      return [...new Float32Array(new Uint32Array([...(t.data as Uint16Array)].map((h) => h << 16)).buffer)];
    };
    // a's rows in b's order (y, x, z): [3, 4], [1, 2] and their mean [2, 3]; then 0.75·a + 0.25·5.
    assert.deepEqual(await got('model.embed_tokens.weight'), [3.5, 4.25, 2, 2.75, 2.75, 3.5]);
    assert.deepEqual(await got('w'), [0.75 * 1 + 0.25 * 3, 0.75 * -2 + 0.25 * 2]);
    assert.equal(await readFile(join(out, 'tokenizer.json'), 'utf8'), tokenizer({ y: 0, x: 1, z: 2 }));
    assert.equal(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
    assert.deepEqual((await readdir(out)).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
    const c = join(root, 'c');
    await checkpoint(
      c,
      { y: 0, x: 1, z: 2 },
      {
        'model.embed_tokens.weight': [
          [3, 2],
          [5, 5, 5, 5, 5, 5],
        ],
        w: [[1], [0]],
      },
    );
    await assert.rejects(
      average(c, b, 0.5, join(root, 'bad')),
      /w: \[1\] in .*c, \[2\] in .*b: not one model/,
    );
    await assert.rejects(average(a, b, 1.5, join(root, 'bad')), /between 0 and 1, got 1.5/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
