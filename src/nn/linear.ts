import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import type { ParamSpec, ParamStore } from './params.js';

/** y = x·Wᵀ + b with W [out, in] as PyTorch's nn.Linear stores it. */
export class Linear implements Disposable {
  constructor(
    readonly weight: Tensor,
    readonly bias: Tensor | null = null,
  ) {}

  static specs(prefix: string, inFeatures: number, outFeatures: number, bias: boolean): ParamSpec[] {
    const s: ParamSpec[] = [{ name: `${prefix}.weight`, shape: [outFeatures, inFeatures] }];
    if (bias) s.push({ name: `${prefix}.bias`, shape: [outFeatures] });
    return s;
  }

  static load(p: ParamStore, prefix: string, bias: boolean): Linear {
    return new Linear(p.take(`${prefix}.weight`), bias ? p.take(`${prefix}.bias`) : null);
  }

  get inFeatures(): number {
    return this.weight.shape[1];
  }
  get outFeatures(): number {
    return this.weight.shape[0];
  }

  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias);
  }

  [Symbol.dispose](): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}
