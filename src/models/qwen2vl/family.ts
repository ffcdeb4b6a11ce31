/** Qwen2-VL as a model family: `model_type: "qwen2_vl"`, the video as tokens in the decoder's sequence. */
import { join } from 'node:path';
import type { JsonObject } from '../../io/json-fields.js';
import { boundEdges } from '../../media/resize.js';
import { type FrameGeometry, type ModelDescription, type ModelFamily, memoryEstimate } from '../family.js';
import { isQwen2VLConfigJson, parseQwen2VLConfig } from './config.js';
import { checkpointProcessor } from './processor.js';
import { estimateMemory } from './size.js';

/**
 * What Qwen2-VL-class families (Qwen2-VL, Vamba) read from a checkpoint without its weights: the config,
 * the description `info` shows, and frame geometry with the processor's pixel bounds for size estimates.
 */
export async function openQwen2VLConfig(dir: string, json: JsonObject) {
  const config = parseQwen2VLConfig(json, join(dir, 'config.json'));
  const { video } = await checkpointProcessor(dir, config.vision);
  const { text, vision } = config;
  const description: ModelDescription = {
    layers: text.num_hidden_layers,
    hiddenSize: text.hidden_size,
    details: [['vision encoder', `${vision.depth} blocks, ${vision.embed_dim} wide`]],
  };
  return {
    config,
    describe: () => description,
    /** A FrameGeometry as the size estimates take it: the processor's pixel bounds, the compute dtype. */
    sized: ({ frames, width, height, activationBytes }: FrameGeometry) => ({
      frames,
      width,
      height,
      minPixels: video.min_pixels,
      maxPixels: video.max_pixels,
      dtype: activationBytes === 4 ? ('f32' as const) : ('bf16' as const),
    }),
  };
}

export const qwen2vl: ModelFamily = {
  name: 'qwen2_vl',
  recognizes: ({ config }) => isQwen2VLConfigJson(config),
  async open({ dir, config: json }, weights) {
    const { config, describe, sized } = await openQwen2VLConfig(dir, json);
    return {
      describe,
      estimateMemory(g) {
        const e = estimateMemory(config, sized(g));
        // The video is in the KV cache of the whole sequence.
        return memoryEstimate(weights, {
          videoTokens: e.tokens.video,
          videoState: e.kvCacheBytes,
          working: e.activationBytes,
        });
      },
      load: async (backend, id) =>
        (await import('./runner.js')).loadQwen2VLRunner({ id, dir, config, weights }, backend),
    };
  },
  video: {
    /** qwen-vl-utils: 2 frames per second, at most 768. */
    defaults: { sampling: 'fps', fps: 2, frames: 768, maxEdge: 640, minEdge: 28 },
    frameSize: (source, s) => boundEdges(s.minEdge, s.maxEdge)(source), // smart_resize follows in the processor
  },
};
