import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { H264, makeVideo, scratch } from '../media/fixtures.js';
import { TEST_POLICY, TestRunner, TOKENS_PER_FRAME } from './test-runner.js';
import { writeTinyCheckpoint } from './tiny-checkpoint.js';

const SOURCE = { width: 96, height: 64 };
const FPS = 10;

describe('VideoLM', () => {
  let video: string;
  before(async () => {
    video = await makeVideo(join(scratch(), 'clip.mp4'), { ...SOURCE, frames: 30, fps: FPS, encode: H264 });
  });

  it('decodes the sampled frames at the size the model asks for and hands them to the model', async () => {
    const runner = new TestRunner(SOURCE);
    const model = VideoLM.fromRunner(runner, TEST_POLICY);
    const progress: number[] = [];
    const handle = await model.encodeVideo(video, {
      frames: 5,
      maxEdge: 48,
      progress: { start: (n) => progress.push(-n), frames: (d) => progress.push(d) },
    });
    const got = runner.encoded[0];
    // The frames that reached the model are the ones whose timestamps the handle reports.
    assert.deepEqual(
      got.frameIndices,
      handle.timestampsSec.map((t) => Math.round(t * FPS)),
    );
    assert.equal(got.frameIndices.length, 5);
    assert.equal(new Set(got.frameIndices).size, 5);
    // Vamba's pre-resize: longest side 96 → 48, the other 64·48/96 = 32.
    assert.deepEqual(got.sizes[0], { width: 48, height: 32 });
    assert.equal(handle.tokens, 5 * TOKENS_PER_FRAME);
    assert.equal(progress[0], -5);
    assert.equal(progress[progress.length - 1], 5);

    // One encoding, several questions.
    const a1 = await model.ask(handle, 'what?').result();
    const a2 = await model.ask(handle, 'and then what?', { maxNewTokens: 2 }).result();
    assert.equal(runner.encoded.length, 1);
    assert.equal(a1.text, `I saw 5 frames: ${got.frameIndices.join(' ')} .`);
    assert.equal(a1.usage.videoTokens, 5 * TOKENS_PER_FRAME);
    assert.equal(a1.usage.promptTokens, 1);
    assert.equal(a1.finishReason, 'stop');
    assert.deepEqual([a2.text, a2.finishReason, a2.usage.completionTokens], ['I saw', 'length', 2]);
    handle.dispose();
    assert.ok(got.disposed);
    assert.throws(() => model.chat([{ role: 'user', content: 'x' }], { video: handle }), /disposed/);
  });

  it('ask() on a file encodes it for that question only and frees it after', async () => {
    const runner = new TestRunner(SOURCE);
    const model = VideoLM.fromRunner(runner, TEST_POLICY);
    const pieces: string[] = [];
    const answer = model.ask(video, 'describe', { frames: 3 });
    for await (const p of answer) pieces.push(p);
    assert.ok(pieces.length > 3);
    assert.equal((await answer.result()).text, pieces.join(''));
    assert.equal(runner.encoded.length, 1);
    assert.ok(runner.encoded[0].disposed);
  });

  it('reports a missing video as an input error through the answer', async () => {
    const model = VideoLM.fromRunner(new TestRunner(SOURCE), TEST_POLICY);
    await assert.rejects(model.ask('/no/such/video.mp4', 'q').text(), /no such file/);
  });

  it('load() names the problem: no checkpoint, no tokenizer, not a Qwen2-VL/Vamba config', async () => {
    await assert.rejects(VideoLM.load(join(scratch(), 'missing-dir')), ModelError);
    const dir = join(scratch(), 'tiny');
    mkdirSync(dir);
    await writeTinyCheckpoint(dir);
    await assert.rejects(VideoLM.load(dir), /no tokenizer\.json; longshot needs the checkpoint's tokenizer/);
    writeFileSync(join(dir, 'config.json'), '{"model_type": "llama"}');
    await assert.rejects(VideoLM.load(dir), /model_type 'llama', which no model family of this build reads/);
  });
});
