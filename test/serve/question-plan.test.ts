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
import { after, describe, it } from 'node:test';
import type { ChatTurn } from '../../src/facade/types.js';
import type { EncodedVideo, ModelRunner } from '../../src/models/family.js';
import { writeTinyQwen2VL, writeTinyTimeViper, writeTinyVamba } from '../facade/tiny-models.js';
import { tinyTstarJson, writeTinyTstar } from '../models/tiny-tstar.js';
import { decodeBytes, encodeFrames, framesOf, measureQuestion, SIDE, TinyRunners } from './tiny-runners.js';

const NEW_TOKENS = 6;
/** This file's frame bytes. */
const pixel = (i: number) => (i * 5) % 241;

describe('a question’s planned cost against the CPU backend’s allocations', () => {
  const runners = new TinyRunners();
  after(() => runners.dispose());

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

  let tinyQwen2VL: Promise<ModelRunner> | undefined;
  /** Tiny Qwen2-VL, loaded once for the tests that ask it. */
  const qwen2vl = (): Promise<ModelRunner> => (tinyQwen2VL ??= runners.load('qwen2vl', writeTinyQwen2VL));

  /**
   * Asks `turns` about `video` with `r` and asserts that the video's question cost (for these turns where
   * `priced`, else for the default prompt; none where the video has no cost) with the decode cache covers the
   * measured peak, at most 3×.
   */
  async function assertCoversPeak(
    r: ModelRunner,
    label: string,
    turns: readonly ChatTurn[],
    video: EncodedVideo,
    priced = false,
    media: 'video' | 'image' = 'video',
  ) {
    const { peak, usage } = await measureQuestion(r, [...turns], video, NEW_TOKENS);
    const text = usage.promptTokens;
    assert.equal(r.promptTokens!(turns, media), text, `${label}: the prompt's tokens counted before it ran`);
    const q = { textTokens: text, newTokens: NEW_TOKENS, ...(priced ? { turns } : {}) };
    // The decode cache as the model states it, for this prompt's text and answer.
    const decode = decodeBytes(r, text, NEW_TOKENS);
    const cost = video.questionBytes?.(q) ?? 0;
    const what = `${label}: question ${cost} B + decode ${decode} B, measured ${peak} B`;
    assert.ok(cost + decode >= peak, `${what}: below the measured peak`);
    assert.ok(cost + decode <= 3 * peak, `${what}: over 3× the measured peak`);
    return { q, cost, peak, what };
  }

  const asked: ChatTurn = { role: 'user', content: 'What happens in the video, and in what order?' };
  for (const arch of Object.keys(writers) as (keyof typeof writers)[])
    it(`${arch}: the question's cost covers the measured peak of its prefill and decode (≤ 3×)`, async () => {
      const r = await runners.load(arch, writers[arch]);
      for (const frames of frameCounts[arch]) {
        const plan = r.planEncode!({ kind: 'video', frames, width: SIDE, height: SIDE });
        const video = await encodeFrames(r, frames, { pixel });
        try {
          const { peak, liveBefore, liveAfter, usage } = await measureQuestion(r, [asked], video, NEW_TOKENS);
          assert.equal(liveAfter, liveBefore, `${arch}: the question frees what it took`);
          const q = { textTokens: usage.promptTokens, newTokens: NEW_TOKENS };
          // What the server reserves for: the prompt's tokens counted before it runs, as the answer counts them.
          assert.equal(r.promptTokens!([asked], 'video'), usage.promptTokens, `${arch}: the prompt's tokens`);
          assert.equal(usage.videoTokens, video.tokens);
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
    const r = await qwen2vl();
    const frames = 256;
    const plan = r.planEncode!({ kind: 'video', frames, width: SIDE, height: SIDE });
    const video = await encodeFrames(r, frames, { pixel });
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
        const { q, cost, peak, what } = await assertCoversPeak(
          r,
          `${turns.length} turns`,
          turns,
          video,
          true,
        );
        // The plan's prefix: the default prompt's text whole (a few tokens more than up to the video's end).
        const planned = plan.questionBytes!(q);
        assert.ok(planned >= cost && planned <= 1.01 * cost, `${what}: the plan's cost ${planned} B`);
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
    const plan = r.planEncode!({ kind: 'image', frames: 1, width: SIDE, height: SIDE });
    const image = await r.encode(framesOf(1, pixel), {
      kind: 'image',
      timestampsSec: [0],
      sampling: { sampling: 'uniform', frames: 1, fps: 2, maxEdge: 640, minEdge: 28 },
    });
    const { q, cost, what } = await assertCoversPeak(
      r,
      'image',
      [{ role: 'user', content: 'What is this?' }],
      image,
      false,
      'image',
    );
    assert.equal(plan.questionBytes!(q), cost, `${what}: the plan's cost is the image's`);
    image.dispose();
  });

  it('qwen2vl: a question about a live video joins its prefix a layer at a time, and costs so (with the decode cache ≥ the measured peak, ≤ 3×)', async () => {
    const r = await qwen2vl();
    using live = r.live!({
      sampling: { sampling: 'uniform', frames: 256, fps: 2, maxEdge: 640, minEdge: 28 },
      label: 'live',
    });
    for await (const batch of framesOf(256, pixel)) await live.append(batch);
    const video = live.snapshot();
    try {
      await assertCoversPeak(r, 'live', [{ role: 'user', content: 'What happens?' }], video);
    } finally {
      video.dispose();
    }
  });

  it('vamba: a question’s peak does not grow with the video (it cross-attends to the video’s K/V in place: no cost beyond the decode cache, which covers the measured peak, ≤ 3×)', async () => {
    const r = await runners.load('vamba', writeTinyVamba);
    const peaks: number[] = [];
    for (const frames of [16, 256]) {
      const plan = r.planEncode!({ kind: 'video', frames, width: SIDE, height: SIDE });
      const video = await encodeFrames(r, frames, { pixel });
      assert.equal(plan.questionBytes, undefined);
      assert.equal(video.questionBytes, undefined);
      try {
        // A short prompt and a long one: the cross-attention's activations grow with the prompt's tokens.
        for (const content of ['What happens?', `What happens?${' And then what?'.repeat(40)}`]) {
          const { peak } = await assertCoversPeak(r, `${frames} frames`, [{ role: 'user', content }], video);
          peaks.push(peak);
        }
      } finally {
        video.dispose();
      }
    }
    assert.ok(peaks[2] <= 1.05 * peaks[0], `16 frames: ${peaks[0]} B, 256 frames: ${peaks[2]} B`);
    assert.ok(
      peaks[3] <= 1.05 * peaks[1],
      `16 frames: ${peaks[1]} B, 256 frames: ${peaks[3]} B (long prompt)`,
    );
  });
});
