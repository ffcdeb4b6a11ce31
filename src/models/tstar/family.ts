/**
 * TSTAR as a model family (`model_type: "tstar"`): a vision tower, the MambaMia compressor and an LLM in one
 * checkpoint (config.ts). Its sampling is the paper's: 128 frames uniformly over the whole video.
 */
import { join } from 'node:path';
import { boundEdges } from '../../media/resize.js';
import { memoryEstimate, type VideoFamily } from '../family.js';
import { checkpointProcessor } from '../qwen2vl/processor.js';
import { isTstarConfigJson, parseTstarConfig } from './config.js';
import { estimateTstar } from './size.js';

export const tstar: VideoFamily = {
  name: 'tstar',
  recognizes: ({ config }) => isTstarConfigJson(config),
  async open({ dir, config: json }, weights) {
    const config = parseTstarConfig(json, join(dir, 'config.json'));
    const { video } = await checkpointProcessor(dir, config.vision);
    const p = config.projector;
    return {
      describe: () => ({
        layers: config.num_hidden_layers,
        hiddenSize: config.hidden_size,
        details: [
          ['vision encoder', `${config.vision.depth} blocks, ${config.vision.embed_dim} wide`],
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
          minPixels: video.min_pixels,
          maxPixels: video.max_pixels,
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
