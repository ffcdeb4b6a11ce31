/**
 * One Nemotron-H block (transformers' `NemotronHBlock`): x + mixer(RMSNorm(x)), the mixer picked by the
 * block's pattern character —
 *   M  Mamba-2 (nn's Mamba2: gated RMSNorm after the gate in n_groups groups, the configured dt limit),
 *   *  causal GQA self-attention with no positional encoding and no biases,
 *   -  MLP down(relu²(up(x))).
 * The residual stream may be kept in f32 (`residual_in_fp32`) while the mixers compute in the weights' dtype.
 */

import { InputError } from '../../errors.js';
import { SelfAttention, type SelfAttentionConfig } from '../../nn/attention.js';
import type { HybridCache, LayerCaches } from '../../nn/cache.js';
import { Mamba2, type Mamba2Config, type Mamba2State, mamba2Config } from '../../nn/mamba2.js';
import { MLP } from '../../nn/mlp.js';
import { RMSNorm } from '../../nn/norm.js';
import type { ParamSpec, ParamStore } from '../../nn/params.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { BlockChar, NemotronHConfig } from './config.js';

const MLP_NAMES = ['up_proj', 'down_proj'];

/** The Mamba-2 mixer: intermediate size heads × head_dim (not expand × hidden), norm groups of I / n_groups. */
export function mambaConfig(c: NemotronHConfig): Mamba2Config {
  const dInner = c.mamba_num_heads * c.mamba_head_dim;
  return mamba2Config(c.hidden_size, {
    dInner,
    dState: c.ssm_state_size,
    dConv: c.conv_kernel,
    headDim: c.mamba_head_dim,
    nGroups: c.n_groups,
    chunkSize: c.chunk_size,
    rmsnorm: true,
    normBeforeGate: false,
    normGroupSize: dInner / c.n_groups,
    normEps: c.layer_norm_epsilon,
    dtLimit: c.time_step_limit,
    bias: c.use_bias,
    convBias: c.use_conv_bias,
  });
}

/** GQA without biases (transformers' NemotronHAttention hard-codes bias=False). */
export function attentionConfig(c: NemotronHConfig): SelfAttentionConfig {
  return {
    hiddenSize: c.hidden_size,
    numHeads: c.num_attention_heads,
    numKvHeads: c.num_key_value_heads,
    headDim: c.head_dim,
    qkvBias: false,
    oBias: false,
  };
}

type Mixer = Mamba2 | SelfAttention | MLP;

/** A decoding sequence's Mamba state (it has one once its prompt ran). */
function mambaStateOf({ cache, layer }: { cache: HybridCache; layer: number }): Mamba2State {
  const s = cache.mambaState(layer);
  if (!s) throw new InputError('step: call prefill first');
  return s;
}

/** t in `dtype` (itself when it already is). */
export const cast = (t: Tensor, dtype: Tensor['dtype']): Tensor =>
  t.dtype === dtype ? t : ops.cast(t, dtype);

export class NemotronHBlock implements Disposable {
  constructor(
    readonly kind: BlockChar,
    readonly norm: RMSNorm,
    readonly mixer: Mixer,
  ) {}

  static specs(prefix: string, kind: BlockChar, c: NemotronHConfig): ParamSpec[] {
    const m = `${prefix}.mixer`;
    const mixer =
      kind === 'M'
        ? Mamba2.specs(m, mambaConfig(c))
        : kind === '*'
          ? SelfAttention.specs(m, attentionConfig(c))
          : MLP.specs(m, c.hidden_size, c.intermediate_size, c.hidden_size, MLP_NAMES, c.mlp_bias);
    return [...RMSNorm.specs(`${prefix}.norm`, c.hidden_size), ...mixer];
  }

  static load(p: ParamStore, prefix: string, kind: BlockChar, c: NemotronHConfig): NemotronHBlock {
    const m = `${prefix}.mixer`;
    const mixer =
      kind === 'M'
        ? Mamba2.load(p, m, mambaConfig(c))
        : kind === '*'
          ? SelfAttention.load(p, m, attentionConfig(c))
          : MLP.load(p, m, c.mlp_hidden_act, MLP_NAMES, c.mlp_bias);
    return new NemotronHBlock(kind, RMSNorm.load(p, `${prefix}.norm`, c.layer_norm_epsilon), mixer);
  }

  /**
   * x [seq, hidden] (the residual stream, in its dtype) → x + mixer(RMSNorm(x)). Mamba-2 and attention blocks
   * continue from their cache layer when given (`layer` indexes the cache's layers, not the blocks); with
   * `rows`, row i of x is one token of the sequence cached in rows[i] (batched decoding). No cache: x may hold
   * `batch` sequences of one length one after another, each mixed on its own (a training step's examples).
   */
  forward(x: Tensor, cache: LayerCaches['cache'], rows: LayerCaches['rows'] = null, batch = 1): Tensor {
    return tidy(() => {
      const o = this.forwardResidual(x, null, cache, rows, batch);
      return ops.add(o.x, o.r);
    });
  }

  /**
   * `forward` on the stream x + r, where r (the previous block's mixer output, in x's dtype) is still to be
   * added: the add happens in this block's norm pass (one launch fewer per block) when the stream and the
   * norm share a dtype. Returns the stream (x + r; x itself without r) and this block's mixer output.
   */
  forwardResidual(
    x: Tensor,
    r: Tensor | null,
    cache: LayerCaches['cache'],
    rows: LayerCaches['rows'] = null,
    batch = 1,
  ): { x: Tensor; r: Tensor } {
    return tidy(() => {
      const dtype = this.norm.weight.dtype;
      let sum: Tensor;
      let h: Tensor;
      if (x.dtype === dtype) ({ sum, out: h } = this.norm.addForward(x, r));
      else {
        sum = r ? ops.add(x, r) : x;
        // As transformers: the norm reads the stream in the weights' dtype (the CUDA norm needs them to agree).
        h = this.norm.forward(cast(sum, dtype));
      }
      return { x: sum, r: cast(this.mix(h, { cache, rows }, batch), x.dtype) };
    });
  }

  private mix(h: Tensor, { cache, rows }: LayerCaches, batch: number): Tensor {
    const m = this.mixer;
    if (m instanceof Mamba2 && rows) return m.stepRows(h, rows.map(mambaStateOf));
    if (m instanceof Mamba2) {
      const [n, hidden] = h.shape;
      if (batch > 1 && (cache || n % batch))
        throw new RangeError(`Nemotron-H: ${n} rows in ${batch} sequences, or with a cache`);
      return m.forward(h.reshape([batch, n / batch, hidden]), cache).reshape([n, hidden]);
    }
    if (m instanceof SelfAttention) return m.forward(h, { rope: null, cache, rows, causal: true, batch });
    return m.forward(h);
  }

  [Symbol.dispose](): void {
    this.norm[Symbol.dispose]();
    this.mixer[Symbol.dispose]();
  }
}
