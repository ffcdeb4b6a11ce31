/**
 * Memory of Nemotron-H's decoding state: K/V grow with the context in the attention blocks only, while each
 * Mamba-2 block holds a fixed SSM state (f32) and conv window (the last conv_kernel − 1 inputs, in the weights'
 * dtype), as nn's Mamba2 and HybridCache keep them. And a block's working set in a prefill (`blockPeakBytes`),
 * for the LLMs built on these blocks (TimeViper's, TSTAR's).
 */
import { mamba2ForwardBytes } from '../../nn/mamba2-size.js';
import { BYTES_PER_ELEMENT, type DType } from '../../runtime/dtype.js';
import { mambaConfig } from './block.js';
import { layerCensus, type NemotronHConfig } from './config.js';

/** Bytes of the cache after `tokens` tokens: K/V (attention) and Mamba-2 states, for `dtype` weights. */
export function nemotronHStateBytes(
  c: NemotronHConfig,
  tokens: number,
  dtype: DType,
): { kv: number; mamba: number } {
  const n = layerCensus(c);
  const convDim = c.mamba_num_heads * c.mamba_head_dim + 2 * c.n_groups * c.ssm_state_size;
  const ssm = c.mamba_num_heads * c.mamba_head_dim * c.ssm_state_size * BYTES_PER_ELEMENT.f32;
  const conv = (c.conv_kernel - 1) * convDim * BYTES_PER_ELEMENT[dtype];
  return {
    kv: n.attention * 2 * c.num_key_value_heads * c.head_dim * BYTES_PER_ELEMENT[dtype] * tokens,
    mamba: n.mamba * (ssm + conv),
  };
}

/**
 * One block of a prefill over L tokens at its widest: `streams` rows of the stream held in the residual's dtype
 * (the block's input; a segment's input kept beside it), the norm's output (and its input's cast), and the
 * block's working set: Mamba-2's in its scope (nn/mamba2-size.ts), attention's projections, the MLP's hidden
 * twice, or its output and the residual sum, whichever is larger.
 */
export function blockPeakBytes(
  m: NemotronHConfig,
  kind: string,
  L: number,
  streams: number,
  dtype: DType,
): number {
  const b = BYTES_PER_ELEMENT[dtype];
  const r = m.residual_in_fp32 ? 4 : b;
  const H = m.hidden_size;
  const held = streams * L * H * r + L * H * b * (r !== b ? 2 : 1);
  const tail = L * H * (b + (r !== b ? r : 0) + r);
  let work = tail;
  if (kind === 'M') work = Math.max(mamba2ForwardBytes(mambaConfig(m), L, dtype), tail);
  else if (kind === '*') {
    const q = m.num_attention_heads * m.head_dim;
    work = Math.max(L * (2 * q + 2 * m.num_key_value_heads * m.head_dim + H) * b, tail);
  } else work = Math.max(L * (2 * m.intermediate_size + H) * b, tail);
  return held + work;
}
