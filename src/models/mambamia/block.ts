/**
 * One MambaMia block (the derivative's `MambaMia2Block`) over the whole clip as one sequence of groups
 * [p₁ … p_k, q]: h = RMSNorm(x); with gated aggregation, each query slot of h becomes
 *
 *   q' = (1 − g)·q + g·Σᵢ wᵢ·pᵢ,   w = softmax(weight_fc(q)),   g = ε + (1 − 2ε)·sigmoid(gate_fc(q))
 *
 * (patch slots unchanged); then x + mixer(h). Parameters: `norm`, `mixer.*`, `weight_fc`, `gate_fc`.
 */
import { InputError } from '../../errors.js';
import { Linear } from '../../nn/linear.js';
import { Mamba2 } from '../../nn/mamba2.js';
import { RMSNorm } from '../../nn/norm.js';
import type { ParamSpec, ParamStore } from '../../nn/params.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import { type MambaMiaConfig, mixerConfig } from './config.js';

/** The gated pooling aggregation's two heads: patch weights and the query/aggregate gate. */
interface Aggregation {
  weight_fc: Linear;
  gate_fc: Linear;
}

export class MambaMiaBlock implements Disposable {
  constructor(
    readonly config: MambaMiaConfig,
    readonly norm: RMSNorm,
    readonly mixer: Mamba2,
    readonly aggregation: Aggregation | null,
  ) {}

  static specs(prefix: string, c: MambaMiaConfig): ParamSpec[] {
    const h = c.hidden_size;
    return [
      ...RMSNorm.specs(`${prefix}.norm`, h),
      ...Mamba2.specs(`${prefix}.mixer`, mixerConfig(c)),
      ...(c.mambamia_gated_aggregation
        ? [
            ...Linear.specs(`${prefix}.weight_fc`, h, c.mambamia_chunk_size, true),
            ...Linear.specs(`${prefix}.gate_fc`, h, 1, true),
          ]
        : []),
    ];
  }

  static load(p: ParamStore, prefix: string, c: MambaMiaConfig): MambaMiaBlock {
    return new MambaMiaBlock(
      c,
      RMSNorm.load(p, `${prefix}.norm`, c.layer_norm_epsilon),
      Mamba2.load(p, `${prefix}.mixer`, mixerConfig(c)),
      c.mambamia_gated_aggregation
        ? {
            weight_fc: Linear.load(p, `${prefix}.weight_fc`, true),
            gate_fc: Linear.load(p, `${prefix}.gate_fc`, true),
          }
        : null,
    );
  }

  /** x [clips, n·(k+1), hidden] (each clip its own sequence) → the block's output, same shape. */
  forward(x: Tensor): Tensor {
    const group = this.config.mambamia_chunk_size + 1;
    if (x.shape[1] % group)
      throw new InputError(
        `MambaMia: a sequence of ${x.shape[1]} tokens is not whole groups of k = ${group - 1} patches and their query (a multiple of ${group}); pad the patches to a multiple of k`,
      );
    return tidy(() => {
      const h = this.norm.forward(x);
      if (this.aggregation) this.aggregate(h);
      return ops.add(x, this.mixer.forward(h));
    });
  }

  /** Rewrites the query slots of h (a fresh tensor) in place. */
  private aggregate(h: Tensor): void {
    const { weight_fc, gate_fc } = this.aggregation!;
    const k = this.config.mambamia_chunk_size;
    const eps = this.config.mambamia_gate_epsilon;
    const groups = h.reshape([(h.shape[0] * h.shape[1]) / (k + 1), k + 1, h.shape[2]]);
    const patches = ops.slice(groups, 1, 0, k);
    const q = ops.slice(groups, 1, k, k + 1);
    const w = ops.softmax(weight_fc.forward(q));
    const pooled = ops.matmul(w, patches);
    const g = ops.affine(ops.sigmoid(gate_fc.forward(q)), 1 - 2 * eps, eps);
    const mixed = ops.add(ops.mul(ops.affine(g, -1, 1), q), ops.mul(g, pooled));
    ops.writeSlice(groups, mixed, 1, k);
  }

  [Symbol.dispose](): void {
    this.norm[Symbol.dispose]();
    this.mixer[Symbol.dispose]();
    this.aggregation?.weight_fc[Symbol.dispose]();
    this.aggregation?.gate_fc[Symbol.dispose]();
  }
}
