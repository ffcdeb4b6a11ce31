/**
 * Nemotron-H as a model family: a text model (`model_type: "nemotron_h"`, or a block pattern with the
 * `backbone.embeddings.` / `backbone.layers.N.mixer.` tensor names), so it has no video policy and refuses videos. Its memory is the
 * weights, K/V of its few attention blocks for the context, the fixed Mamba-2 states and a prefill's working set.
 */
import { join } from 'node:path';
import { BYTES_PER_ELEMENT, type DType } from '../../runtime/dtype.js';
import { type CheckpointFiles, type ModelFamily, memoryEstimate, type WeightSummary } from '../family.js';
import { layerCensus, type NemotronHConfig, parseNemotronHConfig } from './config.js';
import { nemotronHStateBytes } from './size.js';
import { nemotronHParamCount } from './weights.js';

const TENSOR_NAMES = /^backbone\.(embeddings\.|layers\.\d+\.mixer\.)/;

const parse = ({ dir, config }: CheckpointFiles) => parseNemotronHConfig(config, join(dir, 'config.json'));

/** config.json's dtype (`torch_dtype` / `dtype`) as stored, bf16 when it says none (the published checkpoints'). */
const STORED: Record<string, { dtype: DType; name: string }> = {
  float32: { dtype: 'f32', name: 'F32' },
  float16: { dtype: 'f16', name: 'F16' },
  bfloat16: { dtype: 'bf16', name: 'BF16' },
};

export const nemotronH: ModelFamily = {
  name: 'nemotron_h',
  // By tensor names only with a block pattern: plain Mamba / Mamba-2 checkpoints use the same `backbone.` names.
  recognizes: ({ config, tensorNames }) =>
    config.model_type === 'nemotron_h' ||
    (('hybrid_override_pattern' in config || 'layers_block_type' in config) &&
      tensorNames.some((n) => TENSOR_NAMES.test(n))),
  sizeFromConfig(files): WeightSummary {
    const c = parse(files);
    const stored = STORED[c.dtype ?? 'bfloat16'] ?? STORED.bfloat16;
    const parameters = nemotronHParamCount(c);
    return {
      parameters,
      weightBytes: parameters * BYTES_PER_ELEMENT[stored.dtype],
      dtype: stored.name,
      fromConfig: true,
    };
  },
  async open(files, weights) {
    const config = parse(files);
    const n = layerCensus(config);
    const description = {
      layers: config.hybrid_override_pattern.length,
      hiddenSize: config.hidden_size,
      details: [
        ['blocks', `${n.mamba} M (Mamba-2) / ${n.attention} * (attention) / ${n.mlp} - (MLP)`],
        ['context', `${config.max_position_embeddings} tokens`],
      ] as const,
    };
    return {
      describe: () => description,
      estimateMemory({ activationBytes, contextTokens = config.max_position_embeddings }) {
        const dtype: DType = activationBytes === 4 ? 'f32' : 'bf16';
        const state = nemotronHStateBytes(config, contextTokens, dtype);
        return memoryEstimate(weights, {
          videoTokens: 0,
          contextTokens,
          videoState: state.kv + state.mamba,
          working: prefillWorkingBytes(config, contextTokens, activationBytes),
        });
      },
      load: async (backend, id) =>
        (await import('./runner.js')).loadNemotronHRunner({ id, dir: files.dir, config, weights }, backend),
    };
  },
};

/**
 * The largest transient of a prefill of `tokens` tokens in one piece: a block's input, its widest
 * projection and its output (the Mamba-2 in_proj, the MLP's up_proj or q/k/v), plus the last row's f32 logits.
 */
function prefillWorkingBytes(c: NemotronHConfig, tokens: number, activationBytes: number): number {
  const inner = c.mamba_num_heads * c.mamba_head_dim;
  const widest = Math.max(
    2 * inner + 2 * c.n_groups * c.ssm_state_size + c.mamba_num_heads,
    c.intermediate_size,
    (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim,
  );
  return tokens * (2 * c.hidden_size + widest) * activationBytes + c.vocab_size * 4;
}
