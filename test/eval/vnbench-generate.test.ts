/** Our VNBench generator on an ffmpeg test-pattern haystack: the released format, circular options, the needles. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VNBENCH_FILE, VNBENCH_TASKS, vnbench } from '../../src/eval/benchmarks/vnbench.js';
import { runBenchmark } from '../../src/eval/run.js';
import { generateVNBench } from '../../src/eval/vnbench-generate.js';
import { findTools, openVideo } from '../../src/media/index.js';

interface Row {
  video: string;
  question: string;
  options: string[];
  gt: string;
  gt_option: string;
  needle_time: number[];
  length: number;
  type: string;
  try: number;
}

let dir: string;
let rows: Row[];
const FPS = 2;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'longshot-vnbench-'));
  mkdirSync(join(dir, 'hay'));
  // 12 s at 2 fps = 24 haystack frames: room for 6 needles of 2 frames (1 s) each.
  execFileSync(findTools().ffmpeg, [
    ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=128x96:rate=4', '-t', '12'],
    ...['-pix_fmt', 'yuv420p', join(dir, 'hay', 'clip.mp4')],
  ]);
  await generateVNBench({
    haystack: join(dir, 'hay'),
    out: join(dir, 'out'),
    seed: 3,
    fps: FPS,
    height: 96,
    needleSec: 1,
    ffmpegPath: findTools().ffmpeg,
  });
  rows = JSON.parse(readFileSync(join(dir, 'out', VNBENCH_FILE), 'utf8'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('VNBench generator', () => {
  it('writes the 9 subtasks × 4 tries, the answer at each letter once, in the released fields', () => {
    assert.equal(rows.length, 36);
    for (const task of VNBENCH_TASKS) {
      const tries = rows.filter((r) => r.type === task);
      assert.deepEqual(
        tries.map((r) => r.try),
        [0, 1, 2, 3],
        task,
      );
      assert.deepEqual(tries.map((r) => r.gt_option).sort(), ['A', 'B', 'C', 'D'], task);
      for (const r of tries) {
        assert.equal(r.options['ABCD'.indexOf(r.gt_option)], r.gt, task);
        assert.equal(new Set(r.options).size, 4, task);
        assert.equal(r.video, `clip_${task}.mp4`);
      }
    }
    const count = rows.find((r) => r.type === 'cnt_edit1');
    assert.equal(count?.needle_time.length, Number(count?.gt));
    const order = rows.find((r) => r.type === 'ord_edit1');
    assert.equal(order?.gt.split(', ').length, 4);
  });

  it('inserts needle frames (the video grows) and draws them where needle_time says', async () => {
    const edit = rows.find((r) => r.type === 'ret_edit1') as Row;
    const insert = rows.find((r) => r.type === 'cnt_insert1') as Row;
    assert.equal(edit.length, 12);
    assert.equal(insert.length, 12 + insert.needle_time.length * 1); // each insert adds 1 s
    await using v = await openVideo(join(dir, 'out', insert.video));
    const at = Math.round(insert.needle_time[0] * FPS);
    const sample = { indices: [at], timestampsSec: [at / FPS] };
    let frame: { data: Uint8Array } = { data: new Uint8Array(3) };
    for await (const batch of v.frames(sample)) frame = batch[0];
    // The inserted frame's border is the flat grey (90) around the card, not the test pattern.
    for (const k of [0, 1, 2]) assert.ok(Math.abs(frame.data[k] - 90) < 8, `pixel ${frame.data[k]}`);
  });

  it('is scored by `eval vnbench` without the released file’s insert-retrieval swap', async () => {
    const bench = vnbench();
    const items = await bench.read(join(dir, 'out'));
    const r = await runBenchmark({
      benchmark: bench,
      items,
      responder: {
        // Right on ret_insert1 only.
        answer: async (item) =>
          item.groups.type === 'ret_insert1' ? item.answer : item.answer === 'A' ? 'B' : 'A',
      },
      predictions: join(dir, 'p.jsonl'),
    });
    assert.equal(r.scores.breakdown.type.ret_insert1.score, 100);
    assert.equal(r.scores.breakdown.type.ret_insert2.score, 0);
    assert.equal(r.scores.metrics.ret, 100 / 3);
  });
});
