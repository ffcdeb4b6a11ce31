/**
 * A question's cost over an encoded video (`EncodePlan.questionBytes`, `EncodedVideo.questionBytes`: the server
 * reserves it for each question) against what the CPU backend allocates while the question is answered, for tiny
 * random-weight TimeViper and TSTAR (Qwen2 and Nemotron-H LLMs), whose questions run the LLM over every video token
 * again: the cost covers the measured peak above the encoded video and is not absurdly above it (≤ 3×); the plan
 * made before the encode gives the encoded video's cost. And tiny Qwen2-VL, whose question continuing the video's
 * prefilled prefix costs little beyond its decode cache, while a prompt of its own (a system message) prefills
 * the video again, and a question about an image runs its tower again; tiny Vamba, whose question's peak does not
 * grow with the video. Frames are synthetic and fed to the runner directly.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import '../../src/backends/index.js';
import { inspectModel } from '../../src/facade/inspect.js';
import type { Frame } from '../../src/media/index.js';
import type { ModelRunner } from '../../src/models/family.js';
import { getBackend } from '../../src/runtime/device.js';
import { writeTinyQwen2VL, writeTinyTimeViper, writeTinyVamba } from '../facade/tiny-models.js';
import { scratch } from '../media/fixtures.js';
import { tinyTstarJson, writeTinyTstar } from '../models/tiny-tstar.js';

const SIDE = 112;
const NEW_TOKENS = 6;

async function* framesOf(n: number): AsyncGenerator<Frame[]> {
  const data = new Uint8Array(SIDE * SIDE * 3).map((_, i) => (i * 5) % 241);
  for (let i = 0; i < n; i += 8)
    yield Array.from({ length: Math.min(8, n - i) }, (_, j) => ({
      index: i + j,
      timestampSec: (i + j) / 2,
      width: SIDE,
      height: SIDE,
      data,
    }));
}

describe('a question’s planned cost against the CPU backend’s allocations', () => {
  let dir: string;
  const runners: ModelRunner[] = [];
  before(() => {
    dir = scratch();
  });
  after(() => {
    for (const r of runners) r.dispose();
  });

  const writers = {
    timeviper: (m: string) => writeTinyTimeViper(m),
    'tstar-qwen2': (m: string) => writeTinyTstar(m),
    'tstar-nemotron_h': (m: string) =>
      writeTinyTstar(m, 3, { ...tinyTstarJson('nemotron_h'), video_token_id: 6 }),
  };
  const frameCounts: Record<keyof typeof writers, readonly number[]> = {
    timeviper: [4, 96],
    'tstar-qwen2': [4, 128],
    'tstar-nemotron_h': [4, 128],
  };

  let tinyQwen2VL: ModelRunner | undefined;
  /** Tiny Qwen2-VL, loaded once for the tests that ask it. */
  async function qwen2vl(): Promise<ModelRunner> {
    if (tinyQwen2VL) return tinyQwen2VL;
    const m = join(dir, 'qwen2vl');
    mkdirSync(m);
    await writeTinyQwen2VL(m);
    tinyQwen2VL = await (await inspectModel(m)).checkpoint.load(await getBackend('cpu'), m);
    runners.push(tinyQwen2VL);
    return tinyQwen2VL;
  }

  for (const arch of Object.keys(writers) as (keyof typeof writers)[])
    it(`${arch}: the question's cost covers the measured peak of its prefill and decode (≤ 3×)`, async () => {
      const m = join(dir, arch);
      mkdirSync(m);
      await writers[arch](m);
      const backend = await getBackend('cpu');
      const r = await (await inspectModel(m)).checkpoint.load(backend, m);
      runners.push(r);
      for (const frames of frameCounts[arch]) {
        const plan = r.planEncode!({ kind: 'video', frames, width: SIDE, height: SIDE });
        const video = await r.encode(framesOf(frames), {
          kind: 'video',
          timestampsSec: Array.from({ length: frames }, (_, i) => i / 2),
          sampling: { sampling: 'uniform', frames, fps: 2, maxEdge: 640, minEdge: 28 },
        });
        try {
          const before = backend.memory().current;
          backend.resetPeak();
          const answer = r.generate(
            [{ role: 'user', content: 'What happens in the video, and in what order?' }],
            video,
            { maxNewTokens: NEW_TOKENS },
          );
          let step = await answer.next();
          while (!step.done) step = await answer.next();
          const peak = backend.memory().peak - before;
          assert.equal(backend.memory().current, before, `${arch}: the question frees what it took`);
          const q = { textTokens: step.value.usage.promptTokens, newTokens: NEW_TOKENS };
          assert.equal(step.value.usage.videoTokens, video.tokens);
          const planned = plan.questionBytes!(q);
          const what = `${arch}, ${frames} frames (${video.tokens} video tokens, ${q.textTokens} text): planned ${planned} B, measured ${peak} B`;
          assert.equal(video.questionBytes!(q), planned, `${what}: the encoded video's cost is the plan's`);
          assert.ok(planned >= peak, `${what}: the plan is below the measured peak`);
          assert.ok(planned <= 3 * peak, `${what}: the plan is over 3× the measured peak`);
          // More answer tokens, a larger cost (the caches are allocated for them).
          assert.ok(plan.questionBytes!({ ...q, newTokens: 4096 }) > planned, what);
        } finally {
          video.dispose();
        }
      }
    });

  it('qwen2vl: a question continuing the prefix joins a layer of it at a time, any other prompt prefills the video again; with the decode cache they cover the measured peaks (≤ 3×)', async () => {
    const backend = await getBackend('cpu');
    const r = await qwen2vl();
    const frames = 256;
    const plan = r.planEncode!({ kind: 'video', frames, width: SIDE, height: SIDE });
    const video = await r.encode(framesOf(frames), {
      kind: 'video',
      timestampsSec: Array.from({ length: frames }, (_, i) => i / 2),
      sampling: { sampling: 'uniform', frames, fps: 2, maxEdge: 640, minEdge: 28 },
    });
    const c = r.info.decodeCache!;
    const asked = [
      [{ role: 'user', content: 'What happens in the video?' }],
      [
        { role: 'system', content: 'Answer in one word.' },
        { role: 'user', content: 'What happens in the video?' },
      ],
    ] as const;
    const peaks: number[] = [];
    const costs: number[] = [];
    // Another question holds the room after the prefix (its prefill done, its answer not), as a running one does.
    const other = r.generate([{ role: 'user', content: 'And then?' }], video, { maxNewTokens: 64 });
    try {
      await other.next();
      for (const turns of asked) {
        const before = backend.memory().current;
        backend.resetPeak();
        const answer = r.generate([...turns], video, { maxNewTokens: NEW_TOKENS });
        let step = await answer.next();
        while (!step.done) step = await answer.next();
        const peak = backend.memory().peak - before;
        const text = step.value.usage.promptTokens;
        const q = { textTokens: text, newTokens: NEW_TOKENS, turns };
        // The decode cache as the model states it, for this prompt's text and answer.
        const decode =
          c.bytesPerSequence +
          c.bytesPerToken * (text + NEW_TOKENS) +
          (c.activationBytesPerToken ?? 0) * text +
          (c.logitsBytes ?? 0);
        const cost = video.questionBytes!(q);
        const what = `${turns.length} turns: question ${cost} B + decode ${decode} B, measured ${peak} B`;
        // The plan's prefix: the default prompt's text whole (a few tokens more than up to the video's end).
        const planned = plan.questionBytes!(q);
        assert.ok(planned >= cost && planned <= 1.01 * cost, `${what}: the plan's cost ${planned} B`);
        assert.ok(cost + decode >= peak, `${what}: below the measured peak`);
        assert.ok(cost + decode <= 3 * peak, `${what}: over 3× the measured peak`);
        peaks.push(peak);
        costs.push(cost);
      }
    } finally {
      await other.return(undefined as never);
      video.dispose();
    }
    // The system message of its own does not continue the prefix: the video is prefilled again, and costs so.
    assert.ok(peaks[1] > 4 * peaks[0], `measured ${peaks}`);
    assert.ok(costs[1] > 4 * costs[0], `planned ${costs}`);
  });

  it('qwen2vl: a question about an image runs its tower and prefill again, and costs so (with the decode cache ≥ the measured peak, ≤ 3×)', async () => {
    const r = await qwen2vl();
    const backend = await getBackend('cpu');
    const plan = r.planEncode!({ kind: 'image', frames: 1, width: SIDE, height: SIDE });
    const image = await r.encode(framesOf(1), {
      kind: 'image',
      timestampsSec: [0],
      sampling: { sampling: 'uniform', frames: 1, fps: 2, maxEdge: 640, minEdge: 28 },
    });
    const before = backend.memory().current;
    backend.resetPeak();
    const answer = r.generate([{ role: 'user', content: 'What is this?' }], image, {
      maxNewTokens: NEW_TOKENS,
    });
    let step = await answer.next();
    while (!step.done) step = await answer.next();
    const peak = backend.memory().peak - before;
    const c = r.info.decodeCache!;
    const text = step.value.usage.promptTokens;
    const decode =
      c.bytesPerSequence +
      c.bytesPerToken * (text + NEW_TOKENS) +
      (c.activationBytesPerToken ?? 0) * text +
      (c.logitsBytes ?? 0);
    const q = { textTokens: text, newTokens: NEW_TOKENS };
    const cost = image.questionBytes!(q);
    const what = `image: question ${cost} B + decode ${decode} B, measured ${peak} B`;
    assert.equal(plan.questionBytes!(q), cost, `${what}: the plan's cost is the image's`);
    assert.ok(cost + decode >= peak, `${what}: below the measured peak`);
    assert.ok(cost + decode <= 3 * peak, `${what}: over 3× the measured peak`);
    image.dispose();
  });

  it('qwen2vl: a question about a live video joins its prefix a layer at a time, and costs so (with the decode cache ≥ the measured peak, ≤ 3×)', async () => {
    const r = await qwen2vl();
    const backend = await getBackend('cpu');
    using live = r.live!({
      sampling: { sampling: 'uniform', frames: 256, fps: 2, maxEdge: 640, minEdge: 28 },
      label: 'live',
    });
    for await (const batch of framesOf(256)) await live.append(batch);
    const video = live.snapshot();
    try {
      const before = backend.memory().current;
      backend.resetPeak();
      const answer = r.generate([{ role: 'user', content: 'What happens?' }], video, {
        maxNewTokens: NEW_TOKENS,
      });
      let step = await answer.next();
      while (!step.done) step = await answer.next();
      const peak = backend.memory().peak - before;
      const c = r.info.decodeCache!;
      const text = step.value.usage.promptTokens;
      const decode =
        c.bytesPerSequence +
        c.bytesPerToken * (text + NEW_TOKENS) +
        (c.activationBytesPerToken ?? 0) * text +
        (c.logitsBytes ?? 0);
      const cost = video.questionBytes!({ textTokens: text, newTokens: NEW_TOKENS });
      const what = `live: question ${cost} B + decode ${decode} B, measured ${peak} B`;
      assert.ok(cost + decode >= peak, `${what}: below the measured peak`);
      assert.ok(cost + decode <= 3 * peak, `${what}: over 3× the measured peak`);
    } finally {
      video.dispose();
    }
  });

  it('vamba: a question’s peak does not grow with the video (it cross-attends to the video’s K/V in place: no cost beyond the decode cache)', async () => {
    const m = join(dir, 'vamba');
    mkdirSync(m);
    await writeTinyVamba(m);
    const backend = await getBackend('cpu');
    const r = await (await inspectModel(m)).checkpoint.load(backend, m);
    runners.push(r);
    const peaks: number[] = [];
    for (const frames of [16, 256]) {
      const plan = r.planEncode!({ kind: 'video', frames, width: SIDE, height: SIDE });
      const video = await r.encode(framesOf(frames), {
        kind: 'video',
        timestampsSec: Array.from({ length: frames }, (_, i) => i / 2),
        sampling: { sampling: 'uniform', frames, fps: 2, maxEdge: 640, minEdge: 28 },
      });
      const before = backend.memory().current;
      backend.resetPeak();
      const answer = r.generate([{ role: 'user', content: 'What happens?' }], video, {
        maxNewTokens: NEW_TOKENS,
      });
      let step = await answer.next();
      while (!step.done) step = await answer.next();
      peaks.push(backend.memory().peak - before);
      assert.equal(plan.questionBytes, undefined);
      assert.equal(video.questionBytes, undefined);
      video.dispose();
    }
    assert.ok(peaks[1] <= 1.05 * peaks[0], `16 frames: ${peaks[0]} B, 256 frames: ${peaks[1]} B`);
  });
});
