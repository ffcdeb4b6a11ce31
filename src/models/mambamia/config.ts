/**
 * The MambaMia compressor's config: the keys of the derivative's `AudioCompressorConfig` (input/output widths)
 * and `MambaMia2Config` (the Mamba-2 stack, `version`, `mambamia_chunk_size` = k), plus the switches where the
 * paper and the derivative disagree or say nothing (docs/mambamia.md):
 *
 *   mambamia_bidirectional            backward scan too (default: version "v2")
 *   mambamia_gated_aggregation        gated pooling aggregation on the query slots (default: version "v04")
 *   mambamia_bidirectional_combine    "sum" (the derivative's code) or "concat" (the paper's text)
 *   mambamia_gate_epsilon             the gate is kept in [ε, 1−ε] (0.01 in the derivative)
 *   mambamia_frame_sampling           s: the fraction of frames whose query outputs are kept (1: all)
 *   mambamia_frame_sampling_keep      which frame of each run of 1/s is kept: "first" (the paper's counts) or "last"
 *
 * Absent keys take the derivative's defaults (MambaMia2Config; AudioCompressor's head_dim 64, n_groups 1).
 */
import { Fields } from '../../io/json-fields.js';
import { type Mamba2Config, mamba2Config } from '../../nn/mamba2.js';
import { readTimeStepLimit } from '../nemotron_h/config.js';

/** The derivative's versions: causal, causal + gated aggregation, bidirectional. */
export const VERSIONS = ['v0', 'v04', 'v2'] as const;

export interface MambaMiaConfig {
  /** Vision feature width (`input_proj` is an identity when it equals hidden_size). */
  input_size: number;
  /** LLM embedding width (`output_proj` is absent when it equals hidden_size). */
  output_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  expand: number;
  num_heads: number;
  head_dim: number;
  state_size: number;
  n_groups: number;
  conv_kernel: number;
  use_bias: boolean;
  use_conv_bias: boolean;
  norm_before_gate: boolean;
  chunk_size: number;
  layer_norm_epsilon: number;
  time_step_limit: [number, number];
  version: (typeof VERSIONS)[number];
  /** k: patch tokens per query. */
  mambamia_chunk_size: number;
  mambamia_bidirectional: boolean;
  mambamia_gated_aggregation: boolean;
  mambamia_bidirectional_combine: 'sum' | 'concat';
  mambamia_gate_epsilon: number;
  mambamia_frame_sampling: number;
  mambamia_frame_sampling_keep: 'last' | 'first';
}

/** Parses the compressor's config object; `source` names it in errors (e.g. `config.json: mm_projector_config`). */
export function parseMambaMiaConfig(json: unknown, source = 'config.json'): MambaMiaConfig {
  const f = Fields.of(json, source);
  const hidden = f.int('hidden_size', 3072);
  const expand = f.num('expand', 2);
  const headDim = f.int('head_dim', 64);
  const version = f.str('version', 'v04');
  if (!(VERSIONS as readonly string[]).includes(version))
    throw f.error('version', `must be one of ${VERSIONS.join(', ')} (got "${version}")`);
  const combine = f.str('mambamia_bidirectional_combine', 'sum');
  if (combine !== 'sum' && combine !== 'concat')
    throw f.error('mambamia_bidirectional_combine', `must be "sum" or "concat" (got "${combine}")`);
  const keep = f.str('mambamia_frame_sampling_keep', 'first');
  if (keep !== 'last' && keep !== 'first')
    throw f.error('mambamia_frame_sampling_keep', `must be "last" or "first" (got "${keep}")`);
  const c: MambaMiaConfig = {
    input_size: f.int('input_size', hidden),
    output_size: f.int('output_size', hidden),
    hidden_size: hidden,
    num_hidden_layers: f.int('num_hidden_layers', 2),
    expand,
    num_heads: f.int('num_heads', Math.floor((hidden * expand) / headDim)),
    head_dim: headDim,
    state_size: f.int('state_size', 128),
    n_groups: f.int('n_groups', 1),
    conv_kernel: f.int('conv_kernel', 4),
    use_bias: f.bool('use_bias', false),
    use_conv_bias: f.bool('use_conv_bias', true),
    norm_before_gate: f.bool('norm_before_gate', true),
    chunk_size: f.int('chunk_size', 256),
    layer_norm_epsilon: f.num('layer_norm_epsilon', 1e-5),
    time_step_limit: readTimeStepLimit(f, 'time_step_limit'),
    version: version as MambaMiaConfig['version'],
    mambamia_chunk_size: f.int('mambamia_chunk_size', 10),
    mambamia_bidirectional: f.bool('mambamia_bidirectional', version === 'v2'),
    mambamia_gated_aggregation: f.bool('mambamia_gated_aggregation', version === 'v04'),
    mambamia_bidirectional_combine: combine,
    mambamia_gate_epsilon: f.num('mambamia_gate_epsilon', 0.01),
    mambamia_frame_sampling: f.num('mambamia_frame_sampling', 1),
    mambamia_frame_sampling_keep: keep,
  };
  const bad = (key: string, why: string) => {
    throw f.error(key, why);
  };
  if (c.num_heads * c.head_dim !== c.hidden_size * c.expand)
    bad(
      'num_heads',
      `× head_dim (${c.num_heads} × ${c.head_dim}) must equal expand × hidden_size (${c.expand * hidden})`,
    );
  if (c.mambamia_chunk_size < 1) bad('mambamia_chunk_size', 'must be at least 1');
  if (!(c.mambamia_gate_epsilon >= 0 && c.mambamia_gate_epsilon < 0.5))
    bad('mambamia_gate_epsilon', `must be in [0, 0.5) (got ${c.mambamia_gate_epsilon})`);
  if (!(c.mambamia_frame_sampling > 0 && c.mambamia_frame_sampling <= 1))
    bad('mambamia_frame_sampling', `must be in (0, 1] (got ${c.mambamia_frame_sampling})`);
  if (c.num_hidden_layers < 1) bad('num_hidden_layers', 'must be at least 1');
  return c;
}

/** The Mamba-2 mixer of every block (`MambaMia2Mixer` through mamba_ssm's fused kernel). */
export function mixerConfig(c: MambaMiaConfig): Mamba2Config {
  return mamba2Config(c.hidden_size, {
    dInner: c.num_heads * c.head_dim,
    dState: c.state_size,
    dConv: c.conv_kernel,
    headDim: c.head_dim,
    nGroups: c.n_groups,
    chunkSize: c.chunk_size,
    normBeforeGate: c.norm_before_gate,
    normEps: c.layer_norm_epsilon,
    dtLimit: c.time_step_limit,
    bias: c.use_bias,
    convBias: c.use_conv_bias,
    bidirectional: c.mambamia_bidirectional ? c.mambamia_bidirectional_combine : null,
  });
}
