/**
 * Vamba as a model family. Its checkpoints are Qwen2-VL checkpoints (model_type "qwen2_vl") whose config
 * enables the Mamba mixer or α balancing, or whose tensors carry Vamba's layers (config.ts decides); the
 * registry asks this family before Qwen2-VL's. Its sampling is the official evaluation's: 512 frames
 * uniformly at 256/480, and 1024 frames at 256/560 for videos of 30 minutes or more (LVBench).
 */
import { boundEdges } from '../../media/resize.js';
import { type ModelFamily, memoryEstimate } from '../family.js';
import { openQwen2VLConfig } from '../qwen2vl/family.js';
import { registerConvert } from './cli.js';
import { isVambaCheckpoint } from './config.js';
import { vambaEvaluation } from './evaluation.js';
import { estimateVambaMemory } from './size.js';

export const vamba: ModelFamily = {
  name: 'vamba',
  recognizes: ({ config, tensorNames }) => isVambaCheckpoint(config, tensorNames),
  async open({ dir, config: json }, weights) {
    const { config, describe, sized } = await openQwen2VLConfig(dir, json);
    return {
      describe,
      estimateMemory(g) {
        // Measured within ~1% on an H200: the video stream V and every layer's cross-attention K/V persist;
        // the working set is the largest phase's chunk-sized temporaries (they do not grow with the video).
        const e = estimateVambaMemory(config, sized(g));
        const videoState = e.videoKVBytes + e.videoStreamBytes;
        const working = e.totalBytes - e.weightBytes - videoState;
        return memoryEstimate(weights, { videoTokens: e.videoTokens, videoState, working });
      },
      load: async (backend, id) =>
        (await import('./runner.js')).loadVambaRunner({ id, dir, config, weights }, backend),
    };
  },
  video: {
    defaults: { sampling: 'uniform', frames: 512, fps: 2, maxEdge: 480, minEdge: 256 },
    byDuration: [{ fromDurationSec: 1800, frames: 1024, maxEdge: 560 }],
    kinds: ['uniform', 'middle'],
    frameSize: (source, s) => boundEdges(s.minEdge, s.maxEdge)(source),
  },
  commands: [registerConvert],
  evaluation: vambaEvaluation,
};
