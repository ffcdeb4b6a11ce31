/**
 * A ModelRunner whose "network" is replaced by bookkeeping, for testing the facade around a model.
 * Everything else is real: VideoLM opens, samples and decodes the video with ffmpeg at the size
 * TEST_POLICY's `frameSize` asks for. The runner reads each
 * frame's index pattern back (test/media/fixtures.ts), so a test can check which frames reached the model;
 * its answer names them, and it counts tokens as whitespace-separated words.
 */
import type { Generation } from '../../src/facade/answer.js';
import type { ChatTurn, GenerationOptions, ModelInfo } from '../../src/facade/types.js';
import type { Frame, Size } from '../../src/media/index.js';
import { boundEdges } from '../../src/media/index.js';
import type { EncodedVideo, FrameBatchContext, ModelRunner, VideoPolicy } from '../../src/models/family.js';
import { readFrame } from '../media/fixtures.js';

export const TOKENS_PER_FRAME = 4;

export interface TestVideo extends EncodedVideo {
  frameIndices: number[];
  sizes: Size[];
  disposed: boolean;
}

/** The test runner's sampling: 6 'middle' frames, pre-resized to edges 16…64. */
export const TEST_POLICY: VideoPolicy = {
  defaults: { frames: 6, fps: 2, sampling: 'middle', maxEdge: 64, minEdge: 16 },
  frameSize: (source, s) => boundEdges(s.minEdge, s.maxEdge)(source),
};

export class TestRunner implements ModelRunner {
  readonly encoded: TestVideo[] = [];
  generations = 0;
  /** Source size of the test videos, to read their frame patterns back. */
  constructor(
    readonly source: Size,
    readonly pieceDelayMs = 0,
    readonly info: ModelInfo = {
      id: 'test/tiny',
      dir: '/nonexistent',
      architecture: 'test',
      parameters: 0,
      weightBytes: 0,
      dtype: 'F32',
      device: 'cpu',
      layers: 1,
      hiddenSize: 8,
    },
  ) {}

  async encode(frames: AsyncIterable<Frame[]>, opts: FrameBatchContext): Promise<EncodedVideo> {
    const video: TestVideo = {
      frameIndices: [],
      sizes: [],
      tokens: 0,
      bytes: 0,
      disposed: false,
      dispose: () => {},
    };
    for await (const batch of frames) {
      opts.signal?.throwIfAborted();
      for (const f of batch) {
        video.frameIndices.push(readFrame(f, this.source.width, this.source.height).index);
        video.sizes.push({ width: f.width, height: f.height });
      }
      opts.onFrames?.(video.frameIndices.length);
    }
    Object.assign(video, {
      tokens: video.frameIndices.length * TOKENS_PER_FRAME,
      bytes: video.frameIndices.length * 1024,
      dispose: () => {
        video.disposed = true;
      },
    });
    this.encoded.push(video);
    return video;
  }

  async *generate(
    turns: ChatTurn[],
    video: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation {
    this.generations++;
    const frames = (video as TestVideo | undefined)?.frameIndices ?? [];
    const words = `I saw ${frames.length} frames: ${frames.join(' ')} .`.split(' ');
    const max = opts.maxNewTokens ?? 512;
    const out = words.slice(0, max);
    for (const [i, w] of out.entries()) {
      if (this.pieceDelayMs) await new Promise((r) => setTimeout(r, this.pieceDelayMs));
      opts.signal?.throwIfAborted();
      yield i === 0 ? w : ` ${w}`;
    }
    const promptTokens = turns.reduce((n, t) => n + t.content.split(/\s+/).filter(Boolean).length, 0);
    const videoTokens = video?.tokens ?? 0;
    return {
      usage: {
        promptTokens,
        videoTokens,
        completionTokens: out.length,
        totalTokens: promptTokens + videoTokens + out.length,
      },
      finishReason: out.length < words.length ? 'length' : 'stop',
    };
  }

  dispose(): void {}
}
