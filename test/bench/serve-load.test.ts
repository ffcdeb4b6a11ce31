/**
 * bench/serve_load.ts's CPU smoke mode (--tiny: the tiny Qwen2-VL architecture with random weights, behind the
 * real server on 127.0.0.1): every scenario reports, and while a new video is encoded in pieces (chunked
 * prefill) the questions already decoding keep getting tokens, and /metrics shows the encode.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const ROOT = join(import.meta.dirname, '..', '..');

test('serve_load --tiny: all scenarios report, and decodes continue while a new video is encoded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'longshot-serve-load-test-'));
  try {
    const out = join(dir, 'tiny');
    await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'bench/serve_load.ts', '--arch', 'qwen2vl', '--tiny', '--out', out],
      { cwd: ROOT, timeout: 120_000 },
    );
    const r = JSON.parse(readFileSync(`${out}.json`, 'utf8'));
    assert.equal(r.arch, 'qwen2vl');
    assert.equal(r.device, 'cpu');
    assert.ok(r.single.decodeTokS > 0 && r.single.ok === 1);
    assert.equal(r.concurrent.length, 1);
    assert.equal(r.concurrent[0].ok, r.concurrent[0].requests);
    for (const k of ['ttftMs', 'perTokenMs']) assert.ok(r.concurrent[0][k].p50 > 0, k);
    // The steady state (all four decoding) counts only tokens between the last first and the first last token.
    const c = r.concurrent[0];
    assert.ok(c.fullBatchTokS > 0 && c.fullBatchSpeedup > 0, 'full-batch rate');

    const i = r.interference;
    assert.equal(i.questions, 4);
    assert.equal(i.bigFrames, 32);
    assert.equal(i.prefillPieceTokens, 8);
    assert.ok(i.bigAnswered, 'the new video was answered');
    for (const k of ['perTokenMsBefore', 'perTokenMsDuring'])
      for (const q of ['p50', 'p99']) assert.ok(i[k][q] > 0, `${k}.${q}`);
    assert.ok(i.ratioP50 > 0 && typeof i.withinTarget === 'boolean');
    assert.ok(i.encodeS > 0);
    // Chunked prefill: the 4 questions decoded between the pieces of the encode (at once: 0 tokens).
    assert.ok(i.tokensDuringEncode >= 4, `${i.tokensDuringEncode} tokens decoded during the encode`);
    assert.ok(i.metricsDuringEncode.sawEncode >= 1, '/metrics showed the encode running');
    assert.match(readFileSync(`${out}.md`, 'utf8'), /while it is encoded \| [\d.]+ \/ [\d.]+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
