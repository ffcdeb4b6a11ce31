/**
 * Composite rules: the backward of a fused op obtained by replaying the op as a chain of simpler forward ops
 * on a private tape and backpropagating through that. Exact (the same math), but slower and heavier than a
 * dedicated backward kernel: the fallback for fused ops that have none yet.
 */

import { setRecorder } from '../../runtime/grad-hook.js';
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import { type GradContext, registerRule } from '../rule.js';
import { Tape } from '../tape.js';

export type Decomposition<A> = (inputs: readonly (Tensor | null)[], attrs: A) => Tensor[];

/** Runs `decompose` on the saved inputs while recording and backpropagates the outputs' gradients through it. */
export function replayGrads<A>(
  decompose: Decomposition<A>,
  inputs: readonly (Tensor | null)[],
  attrs: A,
  needs: readonly boolean[],
  grads: readonly (Tensor | null)[],
): (Tensor | null)[] {
  const tape = new Tape();
  inputs.forEach((t, i) => {
    if (t && needs[i]) tape.track(t);
  });
  const prev = setRecorder(tape);
  let outs: Tensor[];
  try {
    outs = decompose(inputs, attrs);
  } catch (e) {
    tape.dispose();
    throw e;
  } finally {
    setRecorder(prev);
  }
  const pairs = outs.flatMap((o, i) => (grads[i] ? [[o, ops.clone(grads[i]!)] as const] : []));
  return tape.backward(
    pairs.map((p) => p[0]),
    pairs.map((p) => p[1]),
    inputs.map((t, i) => (needs[i] ? t : null)),
  );
}

let kernelsOn = true;

/** Whether rules use the backends' backward kernels where they exist (true) or always their composites. */
export function useBackwardKernels(on: boolean): void {
  kernelsOn = on;
}
export const kernelsEnabled = (): boolean => kernelsOn;

type Grads<A> = (ctx: GradContext<A>, grads: readonly (Tensor | null)[]) => readonly (Tensor | null)[] | null;

/**
 * A fused op's rule: `kernel.grads` (a dedicated backward kernel; it returns null where the backend lacks it or
 * the case is outside it), else `kernel.special` (a cheaper composite for a case it recognises; null otherwise),
 * else the composite through `decompose`. Saves all inputs and the outputs in `kernel.outputs`.
 */
export function registerComposite<A>(
  op: string,
  decompose: Decomposition<A>,
  kernel?: { outputs: readonly number[]; grads: Grads<A>; special?: Grads<A> },
): void {
  registerRule<A>(op, {
    save: () => ({ inputs: 'all', outputs: kernel?.outputs ?? [] }),
    backward: (ctx, grads) =>
      (kernelsOn && kernel?.grads(ctx, grads)) ||
      kernel?.special?.(ctx, grads) ||
      replayGrads(decompose, ctx.inputs, ctx.attrs, ctx.needs, grads),
  });
}
