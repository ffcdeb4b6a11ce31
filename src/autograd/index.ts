/**
 * Autograd over the runtime: a tape of ops. `valueAndGrad(fn, params)` runs fn (a scalar loss built with the
 * ordinary ops, e.g. a model's forward) while recording, then walks the tape backwards with the rules in
 * ./grads. Model code needs no change: every op in src/runtime/ops.ts reports itself while a tape records.
 * See docs/autograd.md.
 */
import './grads/index.js';
import { toF32 } from '../runtime/dtype.js';
import { active, type Recorder, setRecorder } from '../runtime/grad-hook.js';
import * as ops from '../runtime/ops.js';
import { tidy, tidyAsync } from '../runtime/scope.js';
import { fmt } from '../runtime/shape.js';
import type { Tensor } from '../runtime/tensor.js';
import { recordCheckpoint } from './checkpoint.js';
import { AutogradError } from './rule.js';
import { Tape } from './tape.js';

export { useBackwardKernels } from './grads/composite.js';
export { attentionSegmentsAsBatch } from './grads/fused.js';
export { crossEntropy, klTopK } from './losses.js';
export { AutogradError, coveredOps, type GradContext, type Rule, registerRule } from './rule.js';

const parameters = new WeakSet<Tensor>();

/** Marks t as a parameter (a leaf that gets gradients); returns t. */
export function requiresGrad(t: Tensor): Tensor {
  if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16')
    throw new AutogradError(
      `requiresGrad: a ${t.dtype} tensor ${fmt(t.shape)} has no gradient (floats only)`,
    );
  parameters.add(t);
  return t;
}

/** Whether t was marked by `requiresGrad` (or passed to `valueAndGrad`). */
export const isParameter = (t: Tensor): boolean => parameters.has(t);

/**
 * Runs fn (a scalar loss: shape [] or [1]) while recording, then backward. grads[i] is f32 of params[i]'s shape
 * on its backend (zeros when the loss does not depend on it). Every tensor fn made but the gradients is freed.
 */
export function valueAndGrad(
  fn: () => Tensor,
  params: readonly Tensor[],
): { value: number; grads: Tensor[] } {
  const tape = startTape(params, 'valueAndGrad');
  let loss: Tensor;
  try {
    loss = tidy(fn);
  } catch (e) {
    tape.dispose();
    throw e;
  } finally {
    setRecorder(null);
  }
  return finish(tape, loss, params);
}

/**
 * valueAndGrad for a forward that awaits (host decisions between ops: ToMe's merge plan, TimeViper's token
 * drops). The tape records everything until fn settles, so run no other tensor work meanwhile; every tensor
 * made meanwhile but the gradients is freed, as valueAndGrad does (`tidyAsync`).
 */
export async function valueAndGradAsync(
  fn: () => Promise<Tensor>,
  params: readonly Tensor[],
): Promise<{ value: number; grads: Tensor[] }> {
  const tape = startTape(params, 'valueAndGradAsync');
  let loss: Tensor;
  try {
    loss = await tidyAsync(fn);
  } catch (e) {
    tape.dispose();
    throw e;
  } finally {
    setRecorder(null);
  }
  return finish(tape, loss, params);
}

function startTape(params: readonly Tensor[], what: string): Tape {
  if (active)
    throw new AutogradError(
      `${what}: already recording (nested valueAndGrad, or inside a checkpoint); call it at the top level`,
    );
  const tape = new Tape();
  for (const p of params) {
    requiresGrad(p);
    tape.track(p);
  }
  setRecorder(tape);
  return tape;
}

/** Reads the loss, backpropagates and frees the tape and the loss. */
function finish(tape: Tape, loss: Tensor, params: readonly Tensor[]): { value: number; grads: Tensor[] } {
  try {
    if (loss.size !== 1 || loss.rank > 1)
      throw new AutogradError(`valueAndGrad: the loss must be a scalar ([] or [1]), got ${fmt(loss.shape)}`);
    const value = readScalar(loss);
    const seed = ops.full(loss.backend, loss.shape, 1);
    const found = tape.backward([loss], [seed], params);
    const grads = found.map((g, i) => g ?? ops.zeros(params[i].backend, params[i].shape));
    return { value, grads };
  } finally {
    tape.dispose();
    loss.dispose();
  }
}

function readScalar(t: Tensor): number {
  const read = t.backend.downloadSync;
  if (!read)
    throw new AutogradError(`valueAndGrad: the ${t.backend.name} backend cannot read the loss synchronously`);
  const raw = read.call(t.backend, t);
  return t.dtype === 'bf16' || t.dtype === 'f16' ? toF32(t.dtype, raw)[0] : raw[0];
}

/** Runs fn without recording (evaluation inside a training step, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev: Recorder | null = setRecorder(null);
  try {
    return fn();
  } finally {
    setRecorder(prev);
  }
}

/**
 * Activation checkpointing: runs fn without keeping its intermediate tensors, saving only the tensors it
 * reads from outside; backward recomputes fn's forward from them. fn must be deterministic and must not write
 * into tensors that need gradients made outside it. Outside recording it is a plain call.
 */
export function checkpoint<T extends Tensor>(fn: () => T): T {
  if (!(active instanceof Tape)) return fn();
  return recordCheckpoint(active, fn);
}

/**
 * Checkpoints a method of each object (e.g. every decoder layer's `forward`) until the returned function is
 * called: the method then runs through `checkpoint`, so only each layer's inputs are kept during the forward.
 * The method must return a tensor and must not depend on state that changes after it ran (a KV cache it
 * writes, say): backward replays it.
 */
export function checkpointEach<K extends string>(
  objects: readonly { [k in K]: (...args: never[]) => Tensor }[],
  method: K,
): () => void {
  const originals = objects.map((o) => o[method]);
  objects.forEach((o, i) => {
    const f = originals[i];
    (o as Record<K, unknown>)[method] = (...args: never[]) => checkpoint(() => f.apply(o, args));
  });
  return () =>
    objects.forEach((o, i) => {
      // Own property set above: deleting it restores the prototype's method (or the original own one).
      if (Object.getPrototypeOf(o)[method] === originals[i]) delete (o as Record<K, unknown>)[method];
      else (o as Record<K, unknown>)[method] = originals[i];
    });
}
