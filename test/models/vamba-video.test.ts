/**
 * Vamba on a video file: official settings by duration, frames streamed in batches through preprocessing and
 * the vision tower with the same result as processing them all at once, and the key carrying the file hash.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { InputError, UsageError } from '../../src/errors.js';
import { samplingFor } from '../../src/facade/video-defaults.js';
import { boundEdges } from '../../src/media/resize.js';
import { openVideo } from '../../src/media/video.js';
import { vamba } from '../../src/models/vamba/family.js';
import { Vamba } from '../../src/models/vamba/model.js';
import { H264, makeVideo, scratch } from '../media/fixtures.js';
import { encodeVideoFile, relErr, VAMBA_FIXTURES } from './vamba-fixtures.js';

const be = cpuBackend();

describe('Vamba video policy', () => {
  it('uses the evaluation defaults, the hour-long ones from 30 minutes, and overrides', () => {
    const sampled = (durationSec: number | null, o = {}) => {
      const s = samplingFor(vamba.video, durationSec, o);
      return { numFrames: s.frames, sampling: s.sampling, shortestEdge: s.minEdge, longestEdge: s.maxEdge };
    };
    assert.deepEqual(sampled(600), {
      numFrames: 512,
      sampling: 'uniform',
      shortestEdge: 256,
      longestEdge: 480,
    });
    assert.deepEqual(sampled(null), sampled(60));
    assert.deepEqual(sampled(3600), {
      numFrames: 1024,
      sampling: 'uniform',
      shortestEdge: 256,
      longestEdge: 560,
    });
    assert.deepEqual(sampled(10, { frames: 128, sampling: 'middle', maxEdge: 640 }), {
      numFrames: 128,
      sampling: 'middle',
      shortestEdge: 256,
      longestEdge: 640,
    });
    assert.throws(() => sampled(10, { sampling: 'fps' }), UsageError);
    assert.throws(() => sampled(10, { minEdge: 500, maxEdge: 400 }), UsageError);
  });
});

describe('Vamba from decoded frames', () => {
  let dir: string;
  let path: string;
  let model: Vamba;
  before(async () => {
    dir = scratch();
    path = await makeVideo(join(dir, 'clip.mp4'), {
      width: 64,
      height: 48,
      frames: 30,
      fps: 10,
      encode: H264,
    });
    model = await Vamba.load(join(VAMBA_FIXTURES, 'tiny-a'), { backend: be });
  });
  after(async () => {
    model[Symbol.dispose]();
    await rm(dir, { recursive: true, force: true });
  });

  const opts = { frames: 7, shortestEdge: 16, longestEdge: 40 };

  it('streams frames in batches with the same K/V as all frames at once, keyed by the file hash', async () => {
    using small = await encodeVideoFile(model, path, { ...opts, framesPerBatch: 2, chunkLen: 3 });
    // Reference: every frame decoded first, one processor call, one encode.
    await using video = await openVideo(path);
    const frames = [];
    for await (const b of video.frames({ kind: 'uniform', numFrames: 7 }, { size: boundEdges(16, 40) }))
      frames.push(...b);
    assert.equal(frames.length, 7);
    const { pixelValues, grids } = model.processor.processVideos([frames]);
    assert.equal(grids[0][0], 3, 'the odd 7th frame is dropped: 3 temporal groups');
    using whole = model.encodeVideo(pixelValues, grids[0]);
    assert.equal(small.tokens, whole.tokens);
    for (let i = 0; i < whole.kvs.length; i++)
      assert.ok(relErr(await small.kvs[i].k.data(), await whole.kvs[i].k.data()) < 1e-5);
    const digest = createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
    assert.equal(small.key.video, `sha256:${digest}`);
    assert.equal(small.key.sampling, 'uniform:7');
    assert.equal(small.key.frames, '6');
    assert.match(small.key.size, /^vamba 16\/40 → \d+x\d+$/);
    // A question needs no further video work and gives tokens.
    using session = model.session(small);
    const logits = session.prefill([1, 2, 310, 311, 3]);
    assert.equal(logits.shape[1], 320);
  });

  it('rejects an odd batch size', async () => {
    await assert.rejects(encodeVideoFile(model, path, { ...opts, framesPerBatch: 3 }), InputError);
  });
});
