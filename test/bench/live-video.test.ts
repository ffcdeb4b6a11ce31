/**
 * The live-video benchmark's own code path in --tiny mode (a tiny Vamba config, random weights, the CPU
 * backend): every point is measured and the JSON and Markdown are written.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

test('bench/live_video.ts --tiny measures every point and writes JSON and Markdown', () => {
  const dir = mkdtempSync(join(tmpdir(), 'livevideo-'));
  try {
    const r = spawnSync(
      process.execPath,
      [
        ...['--import', 'tsx', 'bench/live_video.ts', '--tiny'],
        ...['--points', '8,16', '--window', '10', '--measure', '2', '--out', dir],
      ],
      { cwd: join(import.meta.dirname, '..', '..'), encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(readFileSync(join(dir, 'live_video.json'), 'utf8'));
    // 4 warm-up seconds, then each point is reached and 2 more seconds are measured there.
    assert.deepEqual(
      result.points.map((p: { streamSec: number }) => p.streamSec),
      [10, 18],
    );
    // The 10 s window: the second point holds 10 s (whole frame pairs).
    assert.deepEqual(
      result.points.map((p: { heldSec: number }) => p.heldSec),
      [10, 10],
    );
    for (const p of result.points) assert.ok(p.perSecondMs > 0 && p.ttftMs > 0 && p.videoTokens > 0);
    assert.match(readFileSync(join(dir, 'live_video_table.md'), 'utf8'), /\| into the stream \| held \|/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
