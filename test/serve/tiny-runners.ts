/**
 * What the serve memory tests share: tiny random-weight runners loaded on the CPU, synthetic frames fed to them
 * directly (no decoding), the CPU backend's measured peak of one question, and a chat request about a clip.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import '../../src/backends/index.js';
import { inspectModel } from '../../src/facade/inspect.js';
import type { Frame } from '../../src/media/index.js';
import type { EncodedVideo, ModelRunner } from '../../src/models/family.js';
import { getBackend } from '../../src/runtime/device.js';
import type { LongshotServer } from '../../src/serve/index.js';
import { scratch } from '../media/fixtures.js';

/** The synthetic frames' side (112: one 4×4-token group per two frames for the Qwen2-VL towers). */
export const SIDE = 112;

/** `n` SIDE×SIDE frames at 2 fps in batches of 8, every one of bytes `pixel(i)`. */
export async function* framesOf(
  n: number,
  pixel: (i: number) => number = (i) => (i * 7) % 251,
): AsyncGenerator<Frame[]> {
  const data = new Uint8Array(SIDE * SIDE * 3).map((_, i) => pixel(i));
  for (let i = 0; i < n; i += 8)
    yield Array.from({ length: Math.min(8, n - i) }, (_, j) => ({
      index: i + j,
      timestampSec: (i + j) / 2,
      width: SIDE,
      height: SIDE,
      data,
    }));
}

/** Tiny runners on the CPU, each written into its own folder of one scratch directory. */
export class TinyRunners {
  private dir: string | null = null;
  private readonly loaded: ModelRunner[] = [];

  /** Writes a tiny model with `write` into the folder `name` and loads it (once per name). */
  async load(name: string, write: (dir: string) => Promise<unknown>): Promise<ModelRunner> {
    this.dir ??= scratch();
    const m = join(this.dir, name);
    mkdirSync(m);
    await write(m);
    const r = await (await inspectModel(m)).checkpoint.load(await getBackend('cpu'), m);
    this.loaded.push(r);
    return r;
  }

  dispose(): void {
    for (const r of this.loaded) r.dispose();
  }
}

/**
 * Encodes `frames` frames of `framesOf` (with `pixel`) as a video sampled uniformly at 2 fps, in prefill pieces of
 * `pieceTokens` where given.
 */
export const encodeFrames = (
  r: ModelRunner,
  frames: number,
  opts: { pixel?: (i: number) => number; pieceTokens?: number } = {},
): Promise<EncodedVideo> =>
  r.encode(framesOf(frames, opts.pixel), {
    kind: 'video',
    timestampsSec: Array.from({ length: frames }, (_, i) => i / 2),
    sampling: { sampling: 'uniform', frames, fps: 2, maxEdge: 640, minEdge: 28 },
    pieces: opts.pieceTokens ? { tokens: opts.pieceTokens, pause: async () => {} } : undefined,
  });

/**
 * Answers `turns` about `video` with `r` (`newTokens` at most) on the CPU backend: the peak bytes it allocated
 * above what was live before, the live bytes before and after, and the answer's usage.
 */
export async function measureQuestion(
  r: ModelRunner,
  turns: Parameters<ModelRunner['generate']>[0],
  video: EncodedVideo,
  newTokens: number,
) {
  const backend = await getBackend('cpu');
  const before = backend.memory().current;
  backend.resetPeak();
  const answer = r.generate(turns, video, { maxNewTokens: newTokens });
  let step = await answer.next();
  while (!step.done) step = await answer.next();
  return {
    peak: backend.memory().peak - before,
    liveBefore: before,
    liveAfter: backend.memory().current,
    usage: step.value.usage,
  };
}

/** The decode cache's bytes as `r` states them, for a prompt of `text` tokens and `newTokens` answer tokens. */
export function decodeBytes(r: Pick<ModelRunner, 'info'>, text: number, newTokens: number): number {
  const c = r.info.decodeCache!;
  return (
    c.bytesPerSequence +
    c.bytesPerToken * (text + newTokens) +
    (c.activationBytesPerToken ?? 0) * text +
    (c.logitsBytes ?? 0)
  );
}

/** POSTs a chat completion asking 'what?' about `clip.mp4` (`frames` sampled uniformly) to model 'tiny' of `server`. */
export function askAboutClip(server: LongshotServer, frames: number, maxTokens: number): Promise<Response> {
  return fetch(`http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'tiny',
      max_tokens: maxTokens,
      frames,
      sampling: 'uniform',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'video_url', video_url: { url: 'clip.mp4' } },
            { type: 'text', text: 'what?' },
          ],
        },
      ],
    }),
  });
}
