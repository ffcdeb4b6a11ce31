/**
 * The Nemotron-H benchmark's own code path in --tiny mode (the parity fixture's config and a tiny Qwen2-VL,
 * random weights, CPU backend): both longshot series run, the prompt goes through the cache in pieces, and
 * the JSON carries the rows and the two ratios.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

test('bench/nemotron_h.ts --tiny measures prefill and decode and writes JSON', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nemotron-bench-'));
  try {
    const out = join(dir, 'nh');
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'bench/nemotron_h.ts',
        '--tiny',
        '--sizes',
        '30,70',
        '--context',
        '70',
        '--piece',
        '25',
        '--decode',
        '3',
        '--out',
        out,
      ],
      { cwd: join(import.meta.dirname, '..', '..'), encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(readFileSync(`${out}.json`, 'utf8'));
    assert.deepEqual(
      result.series.map((s: { name: string }) => s.name),
      ['longshot Nemotron-H (Nano-9B-v2)', 'longshot Qwen2-7B'],
    );
    const [ours, qwen2] = result.series;
    assert.deepEqual(
      ours.rows.map((row: { tokens: number; status: string }) => [row.tokens, row.status]),
      [
        [30, 'ok'],
        [70, 'ok'],
      ],
    );
    assert.deepEqual(
      qwen2.rows.map((row: { tokens: number }) => row.tokens),
      [70],
    );
    // Decode is measured at the context only.
    assert.equal(ours.rows[0].decodeTokS, undefined);
    assert.ok(ours.rows[1].decodeTokS > 0 && qwen2.rows[0].decodeTokS > 0 && ours.rows[1].prefillS > 0);
    assert.equal(
      result.targets.decodeVsQwen2.ratio,
      Math.round((ours.rows[1].decodeTokS / qwen2.rows[0].decodeTokS) * 1000) / 1000,
    );
    // No peer in --tiny: the prefill ratio is not claimed.
    assert.equal(result.targets.prefillVsTransformers.ratio, null);
    assert.match(r.stdout, /\| 70 \| [\d.]+ \| \d+ \| [\d.]+ \|/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
