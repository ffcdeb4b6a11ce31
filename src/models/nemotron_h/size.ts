/**
 * Memory of Nemotron-H's decoding state: K/V grow with the context in the attention blocks only, while each
 * Mamba-2 block holds a fixed SSM state (f32) and conv window (the last conv_kernel − 1 inputs, in the weights'
 * dtype), as nn's Mamba2 and HybridCache keep them.
 */
import { BYTES_PER_ELEMENT, type DType } from '../../runtime/dtype.js';
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
