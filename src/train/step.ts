/**
 * One optimizer step from micro-batches: gradients summed over the micro-batches (each a Σ of per-token
 * losses), divided by the tokens of the whole step — so `accumulate` micro-batches give the step one batch
 * of them would — then clipped to a global norm and applied by AdamW. A step whose gradient is not finite
 * is skipped (train_needle.py does the same: one bad batch must not poison the weights).
 */
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import type { GradEngine } from './engine.js';
import { type AdamW, clipFactor, globalNorm } from './optimizer.js';

export interface MicroBatch {
  /** Answer tokens the loss sums over. */
  tokens: number;
  /** The gradients of its examples' Σ loss (f32, the optimizer's params in slot order). */
  run(): { grads: Tensor[] } | Promise<{ grads: Tensor[] }>;
}

export interface StepResult {
  tokens: number;
  /** Global gradient norm before clipping (of the mean loss). */
  gradNorm: number;
  skipped: boolean;
}

/** Σ of the micro-batches' gradients (the first one's tensors reused as the sums). */
export async function accumulate(micro: readonly MicroBatch[]): Promise<{ tokens: number; grads: Tensor[] }> {
  let tokens = 0;
  let sums: Tensor[] | null = null;
  for (const mb of micro) {
    const r = await mb.run();
    tokens += mb.tokens;
    if (!sums) sums = r.grads;
    else
      sums = sums.map((s, i) => {
        const t = ops.add(s, r.grads[i]);
        s.dispose();
        r.grads[i].dispose();
        return t;
      });
  }
  if (!sums) throw new RangeError('a step needs at least one micro-batch');
  return { tokens, grads: sums };
}

export async function optimizerStep(
  engine: GradEngine,
  opt: AdamW,
  micro: readonly MicroBatch[],
  lr: number,
  maxNorm: number,
): Promise<StepResult> {
  const { tokens, grads } = await accumulate(micro);
  try {
    const scale = 1 / Math.max(1, tokens);
    const norm = (await globalNorm(engine, grads)) * scale;
    if (!Number.isFinite(norm)) return { tokens, gradNorm: norm, skipped: true };
    opt.apply(engine, grads, lr, scale * clipFactor(norm, maxNorm));
    return { tokens, gradNorm: norm, skipped: false };
  } finally {
    for (const g of grads) g.dispose();
  }
}

/** Splits n items into k runs as equal as possible (the earlier ones one larger). */
export function splitEven<T>(items: readonly T[], k: number): T[][] {
  const out: T[][] = [];
  let at = 0;
  for (let i = 0; i < k; i++) {
    const n = Math.floor(items.length / k) + (i < items.length % k ? 1 : 0);
    if (n) out.push(items.slice(at, at + n));
    at += n;
  }
  return out;
}
