/**
 * AdamW over named parameters with f32 master copies and f32 moments. With bf16 weights the model computes
 * with bf16 tensors (`weights`) and the update lands in the f32 master first, then in the bf16 copy (one
 * fused kernel); with f32 weights the master is the model's own tensor. Decoupled weight decay applies to
 * matrices other than embeddings, as tools/reference/train_needle.py groups them.
 */
import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import type { GradEngine } from './engine.js';

export interface AdamwOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface Slot {
  name: string;
  /** f32 master (the model's tensor itself when the weights are f32). */
  master: Tensor;
  /** The model's bf16 tensor, or null when the master is the model's. */
  copy: Tensor | null;
  m: Tensor;
  v: Tensor;
  decay: boolean;
}

/** Decay matrices, not vectors (norms, biases, α, Mamba's A_log/D/dt_bias) nor embeddings. */
export const decays = (name: string, shape: readonly number[]): boolean =>
  shape.length >= 2 && !name.includes('embed');

export class AdamW implements Disposable {
  readonly slots: Slot[];
  /** Optimizer steps taken. */
  step = 0;

  /** `weights`: the model's tensors (f32 or bf16) of the trainable names; masters are made for bf16 ones. */
  constructor(
    weights: ReadonlyMap<string, Tensor>,
    readonly options: AdamwOptions,
  ) {
    this.slots = [...weights].map(([name, w]) => {
      const bf16 = w.dtype !== 'f32';
      return {
        name,
        master: bf16 ? ops.cast(w, 'f32') : w,
        copy: bf16 ? w : null,
        m: ops.zeros(w.backend, w.shape, 'f32'),
        v: ops.zeros(w.backend, w.shape, 'f32'),
        decay: decays(name, w.shape),
      };
    });
  }

  /** The tensors gradients are taken with respect to (the model's, in slot order). */
  get params(): Tensor[] {
    return this.slots.map((s) => s.copy ?? s.master);
  }

  /** One update with gradients `grads` (slot order) multiplied by `gradScale`, at learning rate `lr`. */
  apply(engine: GradEngine, grads: readonly Tensor[], lr: number, gradScale: number): void {
    this.step++;
    const o = this.options;
    engine.adamwSteps(
      this.slots.map((s, i) => ({
        param: s.master,
        m: s.m,
        v: s.v,
        grad: grads[i],
        copy: s.copy,
        weightDecay: s.decay ? o.weightDecay : 0,
      })),
      { lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, step: this.step, gradScale },
    );
  }

  /** Every tensor of the state by a stable name (for the checkpoint): master (bf16 runs), m and v. */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const s of this.slots) {
      if (s.copy) out.set(`master.${s.name}`, s.master);
      out.set(`m.${s.name}`, s.m);
      out.set(`v.${s.name}`, s.v);
    }
    return out;
  }

  /** Restores state saved by stateTensors (f32 values by name); a missing tensor is an error naming it. */
  load(values: ReadonlyMap<string, Float32Array>, step: number): void {
    const put = (dst: Tensor, key: string) => {
      const v = values.get(key);
      if (!v || v.length !== dst.size)
        throw new RangeError(`optimizer state: "${key}" is missing or has the wrong size`);
      overwrite(dst, ops.tensor(dst.backend, v, dst.shape, 'f32'));
    };
    for (const s of this.slots) {
      if (s.copy) {
        put(s.master, `master.${s.name}`);
        overwrite(s.copy, ops.cast(s.master, s.copy.dtype));
      }
      put(s.m, `m.${s.name}`);
      put(s.v, `v.${s.name}`);
    }
    this.step = step;
  }

  [Symbol.dispose](): void {
    for (const s of this.slots) {
      if (s.copy) s.master.dispose();
      s.m.dispose();
      s.v.dispose();
    }
  }
}

/** √Σ‖g‖² over every gradient (f32), read back as a number (one kernel and one read for all). */
export async function globalNorm(engine: GradEngine, grads: readonly Tensor[]): Promise<number> {
  if (!grads.length) return 0;
  const sum = engine.sumSquares(grads);
  const [v] = await sum.data();
  sum.dispose();
  return Math.sqrt(v);
}

/** Copies `src` (same size, consumed) over `dst`'s elements in place: the model keeps holding `dst`. */
export function overwrite(dst: Tensor, src: Tensor): void {
  tidy(() => ops.writeSlice(dst.reshape([-1]), src.reshape([-1]), 0, 0));
  src.dispose();
}

/** The factor that brings a gradient of norm `norm` to at most `maxNorm` (torch's clip_grad_norm_). */
export const clipFactor = (norm: number, maxNorm: number): number =>
  maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
