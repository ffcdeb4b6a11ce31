/**
 * TSTAR as a model family (`model_type: "tstar"`): a vision tower (Qwen2-VL's or SigLIP), the MambaMia
 * compressor and an LLM (Qwen2 or Nemotron-H) in one checkpoint (config.ts). Its sampling is the paper's: 128 frames uniformly over the whole video.
 */
import { join } from 'node:path';
import { boundEdges } from '../../media/resize.js';
import { memoryEstimate, type VideoFamily } from '../family.js';
import { checkpointProcessor } from '../qwen2vl/processor.js';
import { patchGrid } from '../siglip/config.js';
import { isTstarConfigJson, parseTstarConfig } from './config.js';
import { estimateTstar } from './size.js';

export const tstar: VideoFamily = {
  name: 'tstar',
  recognizes: ({ config }) => isTstarConfigJson(config),
  async open({ dir, config: json }, weights) {
    const config = parseTstarConfig(json, join(dir, 'config.json'));
    const v = config.vision;
    // SigLIP squashes every frame to its square input; the pixel bounds are Qwen2-VL's processor's.
    const bounds =
      v.kind === 'qwen2_vl'
        ? (await checkpointProcessor(dir, v.config)).video
        : { min_pixels: 0, max_pixels: Number.POSITIVE_INFINITY };
    const tower =
      v.kind === 'qwen2_vl'
        ? `Qwen2-VL, ${v.config.depth} blocks, ${v.config.embed_dim} wide`
        : `SigLIP (${v.layout}), ${v.config.num_hidden_layers} blocks, ${v.config.hidden_size} wide, features of block ${v.featureBlock}, ${patchGrid(v.config).tokens} per frame`;
    const p = config.projector;
    return {
      describe: () => ({
        layers: config.num_hidden_layers,
        hiddenSize: config.hidden_size,
        details: [
          ['vision encoder', tower],
          [
            'compressor',
            `MambaMia, ${p.num_hidden_layers} ${p.mambamia_bidirectional ? 'bidirectional' : 'causal'} blocks, ${p.hidden_size} wide, k = ${p.mambamia_chunk_size}, s = ${p.mambamia_frame_sampling}`,
          ],
          ['language model', config.text.kind],
        ],
      }),
      estimateMemory(g) {
        const e = estimateTstar(config, {
          ...g,
          minPixels: bounds.min_pixels,
          maxPixels: bounds.max_pixels,
          dtype: g.activationBytes === 4 ? 'f32' : 'bf16',
        });
        return memoryEstimate(weights, {
          videoTokens: e.videoTokens,
          videoState: e.videoState,
          working: e.working,
        });
      },
      load: async (backend, id) =>
        (await import('./runner.js')).loadTstarRunner({ id, dir, config, weights }, backend),
    };
  },
  video: {
    defaults: { sampling: 'uniform', frames: 128, fps: 2, maxEdge: 640, minEdge: 28 },
    kinds: ['uniform', 'middle', 'fps'],
    frameSize: (source, s) => boundEdges(s.minEdge, s.maxEdge)(source), // smart_resize follows in the processor
  },
};
