import type { Tensor } from './tensor.js';

/**
 * Scopes free device memory deterministically: every tensor created inside `tidy(fn)` is disposed when fn
 * returns, except the tensors it returns (found in arrays, plain objects and Maps of the result) and the ones
 * passed to `keep`. Survivors move to the enclosing scope. Like tf.tidy: fn must be synchronous, because an
 * await would let unrelated work create tensors in this scope.
 */
const stack: Set<Tensor>[] = [];

/** Brand that marks tensors without importing the class (tensor.ts imports this module). */
export const TENSOR_BRAND: unique symbol = Symbol.for('longshot.tensor');
export const isTensor = (v: unknown): v is Tensor =>
  typeof v === 'object' && v !== null && (v as { [TENSOR_BRAND]?: boolean })[TENSOR_BRAND] === true;

export function track(t: Tensor): void {
  if (stack.length) stack[stack.length - 1].add(t);
}

/** Removes a tensor from the current scope so it outlives it (it must then be disposed by its owner). */
export function keep<T extends Tensor>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('tidy expects a function');
  const scope = open();
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise)
      throw new TypeError('tidy: fn must be synchronous (it returned a Promise)');
  } catch (e) {
    close(scope, undefined);
    throw e;
  }
  close(scope, result);
  return result;
}

/**
 * tidy for an async fn that runs alone: every tensor made until it settles — by fn or by anything else, as the
 * scope spans its awaits — is disposed then but those it returns and those passed to `keep`. For work that owns
 * the runtime meanwhile (an autograd recording that awaits host decisions); never with tensor work in parallel.
 */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = open();
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    close(scope, undefined);
    throw e;
  }
  close(scope, result);
  return result;
}

function open(): Set<Tensor> {
  const scope = new Set<Tensor>();
  stack.push(scope);
  return scope;
}

/** Ends `scope`: what `result` holds moves to the enclosing scope, the rest is disposed. */
function close(scope: Set<Tensor>, result: unknown): void {
  stack.splice(stack.lastIndexOf(scope), 1);
  const survivors = new Set<Tensor>();
  collect(result, survivors, new Set());
  for (const t of scope) if (!survivors.has(t)) t.dispose();
  const parent = stack[stack.length - 1];
  if (parent) for (const t of survivors) if (scope.has(t)) parent.add(t);
}

function collect(v: unknown, out: Set<Tensor>, seen: Set<unknown>): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (isTensor(v)) {
    out.add(v as Tensor);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collect(x, out, seen);
  else if (v instanceof Map) for (const x of v.values()) collect(x, out, seen);
  else if (Object.getPrototypeOf(v) === Object.prototype)
    for (const x of Object.values(v)) collect(x, out, seen);
}

/** Disposes every tensor found in a value (arrays, plain objects, Maps). */
export function disposeAll(v: unknown): void {
  const found = new Set<Tensor>();
  collect(v, found, new Set());
  for (const t of found) t.dispose();
}
