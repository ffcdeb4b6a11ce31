import { active as recorder } from '../runtime/grad-hook.js';
import * as ops from '../runtime/ops.js';
import { keep } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import type { ParamSpec, ParamStore } from './params.js';

/** A weight's rows [start, end) and its bias's entries: views, no copies (one part of a packed projection). */
export function rowsOf(
  weight: Tensor,
  bias: Tensor | null | undefined,
  start: number,
  end: number,
): { weight: Tensor; bias: Tensor | null } {
  return { weight: weight.narrow(start, end), bias: bias ? bias.narrow(start, end) : null };
}

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

  /** The layer of output features [start, end), sharing this one's memory (dispose it as well). */
  rows(start: number, end: number): Linear {
    const r = rowsOf(this.weight, this.bias, start, end);
    return new Linear(r.weight, r.bias);
  }

  /**
   * Linears over one input as one: their weights (and biases) copied into one tensor, rows in order, so one
   * GEMM gives all their outputs (a decode step's q/k/v or gate/up: fewer launches, one longer weight read).
   * Returns the fused layer and views of it standing for the parts, which are disposed; null, leaving the
   * parts as they are, when they cannot share a tensor (dtypes, input sizes or bias presence differ) or while
   * autograd records (a model built for a training step: its full-sequence forward reads the parts, and the
   * copy would be made and differentiated through at every step for nothing).
   */
  static fuse(parts: readonly Linear[]): { fused: Linear; parts: Linear[] } | null {
    if (recorder) return null;
    const [first] = parts;
    const same = (l: Linear) =>
      l.weight.dtype === first.weight.dtype &&
      l.inFeatures === first.inFeatures &&
      !l.bias === !first.bias &&
      (!l.bias || l.bias.dtype === first.bias!.dtype);
    if (parts.length < 2 || !parts.every(same)) return null;
    const weight = keep(ops.concat(parts.map((l) => l.weight)));
    const bias = first.bias ? keep(ops.concat(parts.map((l) => l.bias!))) : null;
    const fused = new Linear(weight, bias);
    let at = 0;
    const views = parts.map((l) => {
      const view = fused.rows(at, at + l.outFeatures);
      keep(view.weight);
      if (view.bias) keep(view.bias);
      at += l.outFeatures;
      l[Symbol.dispose]();
      return view;
    });
    return { fused, parts: views };
  }

  /**
   * scale·(x·Wᵀ + b): without a bias the scale rides in the GEMM (its alpha: no launch of its own), with one
   * it is a separate op.
   */
  forward(x: Tensor, scale = 1): Tensor {
    if (scale === 1) return ops.linear(x, this.weight, this.bias);
    if (this.bias) {
      const y = ops.linear(x, this.weight, this.bias);
      try {
        return ops.scale(y, scale);
      } finally {
        y.dispose();
      }
    }
    return ops.linear(x, this.weight, null, scale);
  }

  [Symbol.dispose](): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}
