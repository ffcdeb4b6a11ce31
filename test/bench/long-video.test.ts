/**
 * The long-video benchmark's own code path in --tiny mode (tiny configs, random weights, CPU backend): the
 * longshot series (Vamba, Qwen2-VL, TimeViper without and with token dropping) run every size, and the JSON and
 * the PNG figure are written.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

test('bench/long_video.ts --tiny measures every series and writes JSON and PNG', () => {
  const dir = mkdtempSync(join(tmpdir(), 'longvideo-'));
  try {
    const out = join(dir, 'lv');
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'bench/long_video.ts',
        '--tiny',
        '--frames',
        '4,8',
        '--timeviper-frames',
        '4,8',
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
      [
        'longshot-Vamba',
        'longshot-Qwen2-VL',
        'longshot-TimeViper',
        'longshot-TimeViper + TransV (uni_2_0.34375-attn_6_0.25)',
      ],
    );
    for (const s of result.series) {
      assert.deepEqual(
        s.rows.map((row: { frames: number; status: string }) => [row.frames, row.status]),
        [
          [4, 'ok'],
          [8, 'ok'],
        ],
      );
      for (const row of s.rows) {
        assert.ok(Math.abs(row.prefillS - row.visionS - row.llmS) < 2e-3);
        // TimeViper: 16 tokens per frame after ToMe, prefill only.
        if (s.name.startsWith('longshot-TimeViper')) {
          assert.equal(row.videoTokens, row.frames * 16);
          assert.ok(row.llmS > 0 && row.peakGiB > 0);
          continue;
        }
        // 24×40 frames with 4-pixel patches: 6×10 patches, 15 tokens per two frames.
        assert.equal(row.videoTokens, (row.frames / 2) * 15);
        assert.ok(row.prefillS > 0 && row.decodeTokS > 0 && row.ttft2S > 0);
      }
    }
    assert.match(r.stdout, /\| 8 \| 60 \|/);
    const png = readFileSync(`${out}.png`);
    assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
    assert.equal(png.readUInt32BE(16), 1600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
