/**
 * TimeViper as a model family (`model_type: "timeviper"`, or the official training's `"nano"` LLM config beside
 * its torch.save file; the official state-dict layout either way): a video model whose
 * frames are sampled as its evaluation does (1 fps from the start, the first 256 kept, padded to a multiple of
 * 4, uniform under 32) and squashed to SigLIP's square input.
 */
import { join } from 'node:path';
import type { DType } from '../../runtime/dtype.js';
import { type CheckpointFiles, type ModelFamily, memoryEstimate } from '../family.js';
import { registerConvertTimeViper } from './cli.js';
import { isOfficialNanoConfig, parseTimeViperConfig } from './config.js';
import { timeViperMemory } from './size.js';

const parse = ({ dir, config }: CheckpointFiles) => parseTimeViperConfig(config, join(dir, 'config.json'));

/** Text tokens budgeted for a question in the memory estimate. */
const PROMPT_TOKENS = 256;

export const timeViper: ModelFamily = {
  name: 'timeviper',
  recognizes: ({ config }) => config.model_type === 'timeviper' || isOfficialNanoConfig(config),
  async open(files, weights) {
    const config = parse(files);
    const description = {
      layers: config.llm.hybrid_override_pattern.length,
      hiddenSize: config.llm.hidden_size,
      details: [
        [
          'vision',
          `SigLIP (${config.visionLayout}) ${config.vision.num_hidden_layers} blocks × ${config.vision.hidden_size}, features of block ${config.featureBlock}`,
        ],
        ['tokens per frame', `${config.tokensPerFrame} (ToMe)`],
        [
          'token dropping',
          config.pdropType && config.stages.length ? `${config.pdropType} (${config.mergeModule})` : 'none',
        ],
      ] as const,
    };
    return {
      describe: () => description,
      estimateMemory({ frames, activationBytes }) {
        const dtype: DType = activationBytes === 4 ? 'f32' : 'bf16';
        const m = timeViperMemory(config, { frames, textTokens: PROMPT_TOKENS, dtype });
        // The video's tokens stay; the larger phase comes on top: its encode, or a question's prefill.
        return memoryEstimate(weights, {
          videoTokens: m.videoTokens,
          videoState: m.stateBytes,
          working: Math.max(m.encodeBytes - m.stateBytes, m.prefillBytes),
        });
      },
      load: async (backend, id) =>
        (await import('./runner.js')).loadTimeViperRunner({ id, dir: files.dir, config, weights }, backend),
    };
  },
  commands: [registerConvertTimeViper],
  video: {
    defaults: { sampling: 'first-seconds', frames: 256, fps: 1, maxEdge: 1280, minEdge: 384 },
    kinds: ['first-seconds', 'uniform'],
    // Frames are decoded near their own size (bounded) and squashed to image_size × image_size by the runner.
    frameSize: (source, s) => {
      const scale = Math.min(1, s.maxEdge / Math.max(source.width, source.height));
      return { width: Math.round(source.width * scale), height: Math.round(source.height * scale) };
    },
  },
};
