/**
 * The encode plans the server admits by (`ModelRunner.planEncode`: models/qwen2vl/size.ts, models/vamba/size.ts,
 * models/timeviper/size.ts, models/tstar/size.ts) against what the CPU backend allocates (its live-byte count and
 * peak) for tiny random-weight models: the planned peak covers the measured one and is not absurdly above it
 * (≤ 3×), the planned state is the encoded video's bytes. Frames are synthetic and fed to the runner directly
 * (112×112: one 4×4-token group per two frames for the Qwen2-VL towers), so a long video is cheap. The frame
 * counts reach each phase: Qwen2-VL and Vamba's vision tower (few) and prefill / LLM (1024); TimeViper's tower
 * batch (few) and the concatenation of the projected tokens (1600); TSTAR's tower (few) and its compressor
 * (256), with the Qwen2-VL tower and with SigLIP's. Then a tiny Qwen2-VL server refuses a video it could never
 * encode with 413 naming the sizes.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import '../../src/backends/index.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { getBackend } from '../../src/runtime/device.js';
import { createServer } from '../../src/serve/index.js';
import { writeTinyQwen2VL, writeTinyTimeViper, writeTinyVamba } from '../facade/tiny-models.js';
import { H264, makeVideo, scratch } from '../media/fixtures.js';
import { tinySiglip, tinyTstarJson, writeTinyTstar } from '../models/tiny-tstar.js';
import { askAboutClip, encodeFrames, SIDE, TinyRunners } from './tiny-runners.js';

describe('encode plans against the CPU backend’s allocations', () => {
  const runners = new TinyRunners();
  after(() => runners.dispose());

  const writers = {
    qwen2vl: writeTinyQwen2VL,
    vamba: writeTinyVamba,
    timeviper: writeTinyTimeViper,
    tstar: (m: string) => writeTinyTstar(m),
    'tstar-siglip': (m: string) =>
      writeTinyTstar(m, 2, {
        ...tinyTstarJson('nemotron_h'),
        vision_config: tinySiglip('hf'),
        video_token_id: 6,
      }),
  };

  const sizes: Record<keyof typeof writers, readonly (readonly [number, number | undefined])[]> = {
    qwen2vl: [
      [16, undefined],
      [256, undefined],
      [1024, 256],
    ],
    vamba: [
      [16, undefined],
      [256, undefined],
      [1024, 256],
    ],
    timeviper: [
      [4, undefined],
      [1600, undefined],
    ],
    tstar: [
      [4, undefined],
      [256, undefined],
    ],
    'tstar-siglip': [
      [4, undefined],
      [64, undefined],
    ],
  };

  for (const arch of Object.keys(writers) as (keyof typeof writers)[])
    it(`${arch}: the planned peak covers the measured one (≤ 3×), the planned state is the video's bytes`, async () => {
      const r = await runners.load(arch, writers[arch]);
      const backend = await getBackend('cpu');
      for (const [frames, pieceTokens] of sizes[arch]) {
        const plan = r.planEncode!({ kind: 'video', frames, width: SIDE, height: SIDE, pieceTokens });
        const before = backend.memory().current;
        backend.resetPeak();
        const video = await encodeFrames(r, frames, { pieceTokens });
        const peak = backend.memory().peak - before;
        const held = backend.memory().current - before;
        const what = `${arch}, ${frames} frames${pieceTokens ? `, pieces of ${pieceTokens}` : ''}: planned ${plan.peakBytes} B, measured ${peak} B`;
        assert.equal(plan.videoTokens, video.tokens, what);
        assert.equal(held, video.bytes, `${what}: the video's bytes are what it holds`);
        // The state: the video's bytes exactly, or (Qwen2-VL) a few prompt tokens' K/V more.
        assert.ok(
          plan.stateBytes >= held && plan.stateBytes <= held * 1.01,
          `${what}: state ${plan.stateBytes} vs ${held}`,
        );
        assert.ok(plan.peakBytes >= peak, `${what}: the plan is below the measured peak`);
        assert.ok(plan.peakBytes <= 3 * peak, `${what}: the plan is over 3× the measured peak`);
        video.dispose();
      }
    });

  it('a server refuses a video it could never encode with 413 naming the sizes and what to do', async () => {
    const m = scratch();
    await writeTinyQwen2VL(m);
    await makeVideo(join(m, 'clip.mp4'), { width: 96, height: 64, frames: 40, fps: 10, encode: H264 });
    const model = await VideoLM.load(m, { device: 'cpu' });
    const plan = (frames: number) => model.planEncode(join(m, 'clip.mp4'), { frames, sampling: 'uniform' });
    const [small, large] = [(await plan(4))!, (await plan(40))!];
    assert.ok(large.peakBytes > small.peakBytes);
    // Room for the 4-frame encode and a decode cache, not for the 40-frame one.
    const weights = (await getBackend('cpu')).memory().current;
    const server = createServer(model, {
      modelId: 'tiny',
      media: { allowedRoot: m },
      memoryBudgetBytes: weights + (small.peakBytes + large.peakBytes) / 2,
      prefillPieceTokens: 0,
    });
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const ask = (frames: number) => askAboutClip(server, frames, 2);
      const refused = await ask(40);
      assert.equal(refused.status, 413);
      const { error } = await refused.json();
      assert.equal(error.code, 'request_too_large');
      assert.match(
        error.message,
        /needs about \d+ MiB \(decode cache \d+ MiB, a question over its video \d+ MiB, encoding its video \d+ MiB\) but the server has \d+ MiB for requests/,
      );
      assert.match(error.message, /fewer frames.*--memory-budget.*more memory/);
      const ok = await ask(4);
      assert.equal(ok.status, 200);
    } finally {
      await server.close();
      model.dispose();
    }
  });
});
