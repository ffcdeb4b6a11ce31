import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import type { ParamSpec, ParamStore } from './params.js';

/** RMSNorm (Qwen2RMSNorm): x / sqrt(mean(x²) + eps) · w, statistics in f32. */
export class RMSNorm implements Disposable {
  constructor(
    readonly weight: Tensor,
    readonly eps: number,
  ) {}

  static specs(prefix: string, dim: number): ParamSpec[] {
    return [{ name: `${prefix}.weight`, shape: [dim] }];
  }

  static load(p: ParamStore, prefix: string, eps: number): RMSNorm {
    return new RMSNorm(p.take(`${prefix}.weight`), eps);
  }

  forward(x: Tensor): Tensor {
    return ops.rmsNorm(x, this.weight, { eps: this.eps });
  }

  /**
   * The pre-norm residual step in one pass: `sum` = x + residual, `out` = the norm of it. Without a residual,
   * `sum` is x itself.
   */
  addForward(x: Tensor, residual: Tensor | null): { sum: Tensor; out: Tensor } {
    return residual
      ? ops.addRmsNorm(x, residual, this.weight, { eps: this.eps })
      : { sum: x, out: this.forward(x) };
  }

  [Symbol.dispose](): void {
    this.weight.dispose();
  }
}

/** LayerNorm with weight and bias (nn.LayerNorm). */
export class LayerNorm implements Disposable {
  constructor(
    readonly weight: Tensor,
    readonly bias: Tensor,
    readonly eps: number,
  ) {}

  static specs(prefix: string, dim: number): ParamSpec[] {
    return [
      { name: `${prefix}.weight`, shape: [dim] },
      { name: `${prefix}.bias`, shape: [dim] },
    ];
  }

  static load(p: ParamStore, prefix: string, eps: number): LayerNorm {
    return new LayerNorm(p.take(`${prefix}.weight`), p.take(`${prefix}.bias`), eps);
  }

  forward(x: Tensor): Tensor {
    return ops.layerNorm(x, this.weight, this.bias, this.eps);
  }

  /**
   * The pre-norm residual step in one pass: `sum` = x + residual, `out` = the norm of it. Without a residual,
   * `sum` is x itself.
   */
  addForward(x: Tensor, residual: Tensor | null): { sum: Tensor; out: Tensor } {
    return residual
      ? ops.addLayerNorm(x, residual, this.weight, this.bias, this.eps)
      : { sum: x, out: this.forward(x) };
  }

  [Symbol.dispose](): void {
    this.weight.dispose();
    this.bias.dispose();
  }
}
