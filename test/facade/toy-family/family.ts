/**
 * A toy model family, written only against the public extension API (`longshot/models`, the root types):
 * it recognises checkpoints whose config.json says `model_type: "toy_lm"`, samples 3 frames (5 from videos
 * of 2 s or more: a duration rule as data), decodes them at half the source size, and "answers" by naming
 * what reached it. Registering it is the only step: VideoLM, the CLI and the server then serve it.
 */
import type { ModelInfo } from '../../../src/index.js';
import {
  type EncodedVideo,
  type ModelFamily,
  type ModelRunner,
  memoryEstimate,
  runnerInfo,
} from '../../../src/models/index.js';

export const TOY_MODEL_TYPE = 'toy_lm';

interface ToyVideo extends EncodedVideo {
  sizes: string[];
  kind: string;
}

function toyRunner(info: ModelInfo): ModelRunner {
  return {
    info,
    async encode(frames, c) {
      const sizes: string[] = [];
      for await (const batch of frames) {
        for (const f of batch) sizes.push(`${f.width}x${f.height}`);
        c.onFrames?.(sizes.length);
      }
      const video: ToyVideo = { sizes, kind: c.kind, tokens: sizes.length, bytes: 0, dispose: () => {} };
      return video;
    },
    async *generate(turns, encoded, opts) {
      const video = encoded as ToyVideo | undefined;
      const question = turns.at(-1)?.content ?? '';
      const words =
        `toy saw ${video?.sizes.length ?? 0} frames at ${video?.sizes[0] ?? 'none'} for: ${question}`.split(
          ' ',
        );
      const out = words.slice(0, opts.maxNewTokens ?? words.length);
      for (const [i, w] of out.entries()) yield i ? ` ${w}` : w;
      const promptTokens = question.split(' ').length;
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
    },
    dispose() {},
  };
}

export const toy: ModelFamily = {
  name: 'toy',
  recognizes: ({ config }) => config.model_type === TOY_MODEL_TYPE,
  async open({ dir, config }, weights) {
    const hidden = Number(config.hidden_size);
    const shape = { layers: 1, hiddenSize: hidden };
    return {
      describe: () => ({ ...shape, details: [['toy detail', 'one linear map']] }),
      estimateMemory: (g) =>
        memoryEstimate(weights, {
          videoTokens: g.frames,
          videoState: g.frames * hidden * g.activationBytes,
          working: 0,
        }),
      load: async (backend, id) =>
        toyRunner(
          runnerInfo('toy', { id, dir, config, weights }, shape, { dtype: 'f32', device: backend.name }),
        ),
    };
  },
  video: {
    defaults: { sampling: 'uniform', frames: 3, fps: 1, maxEdge: 64, minEdge: 1 },
    byDuration: [{ fromDurationSec: 2, frames: 5 }],
    frameSize: (source) => ({ width: Math.round(source.width / 2), height: Math.round(source.height / 2) }),
  },
};
