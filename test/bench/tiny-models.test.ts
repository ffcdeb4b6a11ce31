/**
 * The tiny-model table (bench/tiny_models.ts): its held-out seeds stay clear of every seed training and the other
 * held-out sets use, counts per length, the Markdown rows, and a --tiny run end to end (one shipped model, one
 * 16-frame video: a set generated, a worker process, the JSON and the table written).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { countsFor, markdownTable, type Row, setSeed } from '../../bench/tiny_models.js';

const tmp = mkdtempSync(join(tmpdir(), 'tiny-models-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('held-out seeds: 9300 + log2(frames), none that training or the other held-out sets use', () => {
  assert.deepEqual([32, 128, 512, 1024].map(setSeed), [9305, 9307, 9309, 9310]);
  const used = [
    ...Array.from({ length: 14 }, (_, i) => [1000 + i, 2000 + i]).flat(),
    2100,
    2101,
    2102,
    2103,
    ...Array.from({ length: 7 }, (_, i) => [9101 + i, 9201 + i]).flat(),
  ];
  for (const n of [16, 32, 64, 128, 256, 512, 1024]) assert.ok(!used.includes(setSeed(n)), `${n}`);
});

test('counts: one for all lengths or one each; anything else is refused', () => {
  assert.deepEqual(countsFor('3', [32, 128]), [3, 3]);
  assert.deepEqual(countsFor('4,2', [32, 128]), [4, 2]);
  assert.throws(() => countsFor('4,2,1', [32, 128]), /one per length \(2\)/);
  assert.throws(() => countsFor('0', [32]), /one positive count/);
});

test('the table: a row per model and length, skipped rows say why', () => {
  const rows: Row[] = [
    {
      model: 'models/needle-vamba-tiny',
      architecture: 'vamba',
      frames: 128,
      multiple: 4,
      status: 'ok',
      correct: 3,
      total: 4,
      accuracy: 0.75,
      videoTokens: 1024,
      secondsPerQuestion: 1.234,
      peakRssMiB: 200,
      peakTensorMiB: 20,
    },
    { model: 'models/x', architecture: null, frames: 512, multiple: 16, status: 'skipped', note: 'budget' },
  ];
  const md = markdownTable(rows, 'head');
  assert.match(
    md,
    /\| needle-vamba-tiny \(vamba\) \| 128 \(4×\) \| 75\.0% \(3\/4\) \| 1024 \| 1\.23 \| 200 \| 20 \|/,
  );
  assert.match(md, /\| x \| 512 \(16×\) \| skipped: budget \|/);
});

test('--tiny runs a shipped model on a generated set and writes the JSON and the table', async () => {
  const out = join(tmp, 'out');
  const run = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'bench/tiny_models.ts',
        '--tiny',
        '--models',
        'models/needle-qwen2vl-tiny,models/needle-absent-tiny',
        '--lengths',
        '16',
        '--data',
        join(tmp, 'sets'),
        '--out',
        out,
      ],
      { env: { ...process.env, NODE_TEST_CONTEXT: undefined }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /needle-absent-tiny: not present, left out/);
  const result = JSON.parse(readFileSync(join(out, 'tiny_models.json'), 'utf8'));
  assert.deepEqual(result.options.seeds, [9304]);
  assert.equal(result.rows.length, 1);
  const [row] = result.rows;
  assert.equal(row.status, 'ok', row.note);
  assert.deepEqual([row.architecture, row.frames, row.videos, row.total], ['qwen2_vl', 16, 1, 2]);
  // Qwen2-VL's needle model: 16 frames = 8 temporal groups of 4×4 merged tokens (112×112 frames).
  assert.equal(row.videoTokens, 8 * 16);
  assert.ok(row.secondsPerQuestion > 0 && row.peakRssMiB > 0 && row.peakTensorMiB > 0);
  assert.match(
    readFileSync(join(out, 'tiny_models.md'), 'utf8'),
    /\| needle-qwen2vl-tiny \(qwen2_vl\) \| 16 \(0\.5×\) \|/,
  );
});
