/**
 * Device bytes a Mamba-2 mixer holds while it runs over a whole sequence at once (`Mamba2.forward` without a
 * cache, or `Mamba2.prefill`): everything it makes lives until its tidy() scope ends, so the peak is the sum —
 * in_proj's parts z, x, B‖C, dt; the causal conv's outputs and the B / C copies split from them; dt in f32
 * (cast, + dt_bias, softplus, each clamp); the SSD's y; the gated output; out_proj's output. A bidirectional
 * mixer (MambaMia) adds the flipped inputs, the backward scan's set, the flipped y and the combination. Each
 * scan also leaves its state (the SSM's in f32; the conv windows, apart and joined). The backends' own scratch
 * (the CUDA SSD's workspace, at most 256 MiB) is left out.
 */
import { BYTES_PER_ELEMENT, type DType } from '../runtime/dtype.js';
import type { Mamba2Config } from './mamba2.js';

/** Bytes of one Mamba-2 mixer over `tokens` tokens in `dtype` (its input not counted, its output counted). */
export function mamba2ForwardBytes(c: Mamba2Config, tokens: number, dtype: DType): number {
  const b = BYTES_PER_ELEMENT[dtype];
  const nHeads = c.dInner / c.headDim;
  const bc = 2 * c.nGroups * c.dState;
  const project = 2 * c.dInner + bc + nHeads;
  const clamps = (c.dtLimit[0] > 0 ? 1 : 0) + (c.dtLimit[1] < Number.POSITIVE_INFINITY ? 1 : 0);
  // conv(x), conv(B‖C) and its two halves, y, the gate (a fused norm, or silu(z) and the product).
  const scan = c.dInner + 2 * bc + c.dInner + (c.rmsnorm ? 1 : 2) * c.dInner;
  const dt = (3 + clamps) * nHeads * 4;
  const state = nHeads * c.headDim * c.dState * 4 + 2 * (c.dConv - 1) * (c.dInner + bc) * b;
  if (!c.bidirectional) return tokens * ((project + scan + c.dModel) * b + dt) + state;
  // The flipped x, B‖C, dt and z; the flipped backward y; their sum or concatenation.
  const flips = 2 * c.dInner + bc + nHeads + c.dInner;
  const combine = c.bidirectional === 'sum' ? c.dInner : 2 * c.dInner;
  return tokens * ((project + 2 * scan + flips + combine + c.dModel) * b + 2 * dt) + 2 * state;
}
