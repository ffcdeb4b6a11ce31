/**
 * Backward rules, one per recorded op, in a registry keyed by the op's name (the name ops.ts reports to the
 * recorder). A rule says which inputs/outputs of the forward it needs (the tape keeps those alive) and maps
 * the outputs' gradients to the inputs' gradients.
 */
import { UsageError } from '../errors.js';
import type { Shape } from '../runtime/shape.js';
import type { Tensor } from '../runtime/tensor.js';

export interface GradContext<A = Record<string, unknown>> {
  /** The op's attributes as ops.ts recorded them. */
  attrs: A;
  /** Saved inputs (null where not saved or absent), readable whatever the model code disposed. */
  inputs: readonly (Tensor | null)[];
  /** Saved outputs (null where not saved). */
  outputs: readonly (Tensor | null)[];
  /** Every input's shape (null where absent). */
  shapes: readonly (Shape | null)[];
  /** Which inputs need a gradient (the others may be skipped). */
  needs: readonly boolean[];
}

export interface Rule<A = Record<string, unknown>> {
  /**
   * Indices of the inputs and outputs backward reads ('all' inputs); default none. `needs` says which inputs
   * need a gradient: keep only what those take (a frozen weight's matmul need not keep its activation).
   */
  save?(
    attrs: A,
    needs: readonly boolean[],
  ): { inputs?: readonly number[] | 'all'; outputs?: readonly number[] };
  /**
   * Gradients of the inputs (f32, each input's shape; null or undefined for none) from the outputs' gradients
   * (f32, null where an output got none). Runs inside `tidy`: temporaries need no disposing, and the given
   * gradients may be returned as they are (or as views).
   */
  backward(ctx: GradContext<A>, grads: readonly (Tensor | null)[]): readonly (Tensor | null | undefined)[];
}

const rules = new Map<string, Rule>();

export function registerRule<A>(op: string, rule: Rule<A>): void {
  rules.set(op, rule as unknown as Rule);
}

export const ruleOf = (op: string): Rule | undefined => rules.get(op);

/** The ops that have a backward rule (docs and tests). */
export const coveredOps = (): string[] => [...rules.keys()].sort();

/** Autograd misuse: an op without a backward, an overwritten saved tensor, a loss that is not a scalar. */
export class AutogradError extends UsageError {
  override name = 'AutogradError';
}
