/**
 * The facade's live video over tiny random models: the window forgets the oldest frames (their K/V rows;
 * what is kept equals the last rows of encoding everything at once) and keeps memory bounded; a snapshot
 * is not changed by later appends, and asking a question does not change the live state; a question is
 * answered while an append is under way; families that cannot grow or forget refuse with clear errors.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { UsageError } from '../../src/errors.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import type { Frame } from '../../src/media/index.js';
import { VambaLiveVideo } from '../../src/models/vamba/live.js';
import { Vamba } from '../../src/models/vamba/model.js';
import type { VambaVideo } from '../../src/models/vamba/video-handle.js';
import { TEST_POLICY, TestRunner } from '../facade/test-runner.js';
import { writeTinyQwen2VL, writeTinyVamba } from '../facade/tiny-models.js';
import { assertClose, rng } from '../helpers.js';
import { scratch } from '../media/fixtures.js';

function frames(n: number, from = 0, width = 56, height = 56): Frame[] {
  const r = rng(40 + from);
  return Array.from({ length: n }, (_, i) => {
    const data = new Uint8Array(width * height * 3);
    for (let j = 0; j < data.length; j++) data[j] = Math.floor(r() * 256);
    return { index: from + i, timestampSec: from + i, width, height, data };
  });
}

const cpu = cpuBackend();

describe('live video in the facade', () => {
  let vambaDir: string;
  let qwenDir: string;
  before(async () => {
    const dir = scratch();
    vambaDir = join(dir, 'vamba');
    qwenDir = join(dir, 'qwen');
    mkdirSync(vambaDir);
    mkdirSync(qwenDir);
    await writeTinyVamba(vambaDir, 31);
    await writeTinyQwen2VL(qwenDir, 32);
  });

  it('Vamba: a window keeps the K/V rows of the newest frames as encoding everything gives them', async () => {
    using model = await Vamba.load(vambaDir, { backend: cpu });
    const all = frames(40);
    const { pixelValues, grids } = model.processor.processVideos([all]);
    using whole = model.encodeVideo(pixelValues, grids[0]);
    const perGroup = whole.tokens / 20;
    using live = new VambaLiveVideo(model, {
      sampling: { sampling: 'fps', fps: 1, frames: 0, maxEdge: 56, minEdge: 56 },
      label: 'test',
    });
    await live.append(all);
    // 29 frames asked to go: whole groups only, so 28.
    assert.equal(live.dropOldest(29), 28);
    assert.equal(live.encodedFrames, 12);
    assert.equal(live.tokens, 6 * perGroup);
    const snap = live.snapshot() as VambaVideo;
    for (const [i, kv] of snap.handle.kvs.entries()) {
      const expected = await whole.kvs[i].k.data();
      const got = await kv.k.data();
      // Equal up to rounding: the Mamba scan ran in other chunks.
      assertClose(got, expected.subarray(expected.length - got.length), 1e-5, `layer ${i} keys`);
    }
    snap.dispose();
    // Memory stays bounded while the window slides: at most 1.5× the rows held plus one batch.
    const bound = live.bytes * 2;
    for (let t = 40; t < 240; t += 8) {
      await live.append(frames(8, t));
      live.dropOldest(8);
      assert.ok(live.bytes <= bound, `${live.bytes} bytes after ${t + 8} frames (bound ${bound})`);
    }
    assert.equal(live.encodedFrames, 12);
  });

  it('a snapshot stays as it was while appending goes on, and a question leaves the live state alone', async () => {
    using model = await VideoLM.load(vambaDir, { device: 'cpu' });
    const q = 'What is shown?';
    const opts = { maxNewTokens: 6 };
    const live = model.live({ fps: 1 });
    await live.append(frames(10));
    const early = live.snapshot();
    const first = await model.ask(early, q, opts).result();
    await live.append(frames(20, 10));
    const again = await model.ask(early, q, opts).result();
    assert.equal(again.text, first.text);
    assert.equal(early.tokens, first.usage.videoTokens);
    assert.deepEqual(early.timestampsSec, [...Array(10).keys()]);
    early.dispose();
    // The state after questions in between equals a live video that was never asked.
    const quiet = model.live({ fps: 1 });
    await quiet.append(frames(10));
    await quiet.append(frames(20, 10));
    const [a, b] = [live.snapshot(), quiet.snapshot()];
    assert.equal((await model.ask(a, q, opts).result()).text, (await model.ask(b, q, opts).result()).text);
    assert.equal(a.tokens, b.tokens);
    a.dispose();
    b.dispose();
    assert.deepEqual(
      { ...live.status(), lastFrameAt: null },
      {
        label: 'live video',
        framesSeen: 30,
        framesHeld: 30,
        framesEncoded: 30,
        durationSec: 29,
        heldSec: 29,
        lastFrameAt: null,
        tokens: a.tokens,
        bytes: live.status().bytes,
        windowSec: null,
      },
    );
    await live.close();
    await quiet.close();
    assert.throws(() => live.snapshot(), /the live video was closed/);
  });

  it('answers a question while an append is under way', async () => {
    using model = await VideoLM.load(qwenDir, { device: 'cpu' });
    const live = model.live({ fps: 1 });
    await live.append(frames(4));
    const appending = live.append(frames(64, 4));
    const snap = live.snapshot();
    const answer = await model.ask(snap, 'What is shown?', { maxNewTokens: 4 }).result();
    assert.equal(answer.usage.videoTokens, snap.tokens);
    await appending;
    const now = live.snapshot();
    assert.ok(now.tokens > snap.tokens, `${now.tokens} tokens after the append, ${snap.tokens} before`);
    assert.equal(live.status().framesEncoded, 68);
    snap.dispose();
    now.dispose();
    await live.close();
  });

  it('refuses what a family cannot do, with clear errors', async () => {
    using qwen = await VideoLM.load(qwenDir, { device: 'cpu' });
    assert.throws(
      () => qwen.live({ windowSec: 60 }),
      (e: Error) => e instanceof UsageError && /cannot forget old frames of a live video/.test(e.message),
    );
    assert.throws(() => qwen.live({ fps: 0 }), /fps must be a positive number/);
    // A family whose runner cannot grow a video, and a text model.
    const runner = new TestRunner({ width: 64, height: 48 });
    assert.throws(
      () => VideoLM.fromRunner(runner, TEST_POLICY).live(),
      /test cannot grow an encoded video, so it cannot watch a live one/,
    );
    assert.throws(
      () => VideoLM.fromRunner(runner, undefined).live(),
      /test is a text model: it cannot watch a video/,
    );
    const live = qwen.live();
    assert.throws(() => live.snapshot(), /no frames encoded yet/);
    await assert.rejects(
      live.append([...frames(2), ...frames(1, 2, 28, 56)]),
      /a live video's frames keep one size: this one is 28x56, the first was 56x56/,
    );
    await live.close();
  });
});
