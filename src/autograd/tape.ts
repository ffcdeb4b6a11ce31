/**
 * The tape: while installed as the runtime's recorder it turns every op that reads a tracked tensor into a
 * node (rule, attributes, the tensors its rule saved), and `backward` walks the nodes in reverse recording
 * order (a topological order from the loss), accumulating f32 gradients per tracked tensor version and
 * releasing each gradient and saved tensor as soon as it is consumed.
 */
import { type Recorder, setRecorder } from '../runtime/grad-hook.js';
import * as ops from '../runtime/ops.js';
import { keep, tidy } from '../runtime/scope.js';
import { fmt, type Shape, sameShape } from '../runtime/shape.js';
import { type Buffer, Tensor } from '../runtime/tensor.js';
import { AutogradError, type GradContext, type Rule, ruleOf } from './rule.js';
import { noteWrite, overwritten, writeCount } from './versions.js';

/** One version of a tracked tensor (an in-place write makes a new one); holds its gradient while backward runs. */
class Var {
  grad: Tensor | null = null;
}

interface Saved {
  view: Tensor;
  /** Writes into its buffer before it was saved. */
  version: number;
}

interface Node {
  op: string;
  rule: Rule;
  attrs: Record<string, unknown>;
  inputs: (Var | null)[];
  shapes: (Shape | null)[];
  saved: (Saved | null)[];
  outputs: (Var | null)[];
  savedOut: (Saved | null)[];
}

const isFloatTensor = (t: Tensor) => t.dtype === 'f32' || t.dtype === 'bf16' || t.dtype === 'f16';

export class Tape implements Recorder {
  readonly #vars = new Map<Tensor, Var>();
  #nodes: Node[] = [];
  /** Leaves by buffer: a view of a leaf made before recording (a weight split at load) is found through it. */
  readonly #leaves = new Map<Buffer, Tensor[]>();
  /** Tensors sharing memory (views made while recording): an in-place write through one changes the others. */
  readonly #aliases = new Map<Buffer, Set<Tensor>>();

  /** @param revive disposed tensors that may still be read (their buffers are held by a checkpoint). */
  constructor(readonly revive: ReadonlySet<Tensor> = new Set()) {}

  /** Makes `t` a leaf whose gradient `backward` can return. */
  track(t: Tensor): void {
    if (this.#vars.has(t)) return;
    this.#vars.set(t, new Var());
    const same = this.#leaves.get(t.buffer);
    if (same) same.push(t);
    else this.#leaves.set(t.buffer, [t]);
  }

  /**
   * The Var of an input: its own, or, for an untracked view (made before recording) of a tracked leaf's
   * memory, a new one fed by a 'leafView' node that routes its gradient into the leaf's element range.
   */
  #varOf(t: Tensor): Var | null {
    const v = this.#vars.get(t);
    if (v || !this.#leaves.size) return v ?? null;
    const leaves = this.#leaves.get(t.buffer)?.filter((p) => p.dtype === t.dtype) ?? [];
    const leaf = leaves.find((p) => t.offset >= p.offset && t.offset + t.size <= p.offset + p.size);
    if (!leaf) return this.#spanOf(t, leaves);
    const view = new Var();
    this.#vars.set(t, view);
    this.#push(
      'leafView',
      this.#rule('leafView'),
      { start: t.offset - leaf.offset },
      [leaf],
      [this.#vars.get(leaf)!],
      [t],
      [view],
    );
    return view;
  }

  /**
   * For an untracked tensor whose elements are exactly several tracked leaves end to end (layers fused at load,
   * e.g. q‖k‖v, whose parts are the parameters and views of it), a new Var fed by a 'leafSpan' node that hands
   * each leaf its range of the gradient; null when the leaves do not tile it.
   */
  #spanOf(t: Tensor, leaves: readonly Tensor[]): Var | null {
    const parts = leaves
      .filter((p) => p.offset >= t.offset && p.offset + p.size <= t.offset + t.size)
      .sort((a, b) => a.offset - b.offset);
    let at = t.offset;
    for (const p of parts) {
      if (p.offset !== at) return null;
      at += p.size;
    }
    if (!parts.length || at !== t.offset + t.size) return null;
    const span = new Var();
    this.#vars.set(t, span);
    this.#push(
      'leafSpan',
      this.#rule('leafSpan'),
      {},
      parts,
      parts.map((p) => this.#vars.get(p)!),
      [t],
      [span],
    );
    return span;
  }

  tracks(t: Tensor): boolean {
    return this.#vars.has(t);
  }

  revived(t: Tensor): boolean {
    return this.revive.has(t);
  }

  record(op: string, inputs: readonly (Tensor | null)[], outputs: readonly Tensor[], attrs: object): void {
    // Views are noted even of untracked memory: a later in-place write of a tracked value through one view
    // (a slice of a zeros buffer filled per example) must reach the others that read that memory.
    for (const t of outputs) {
      const base = isFloatTensor(t) ? inputs.find((x) => x?.buffer === t.buffer) : undefined;
      if (base) this.#alias(base, t);
    }
    const vars = inputs.map((t) => (t ? this.#varOf(t) : null));
    if (vars.every((v) => v === null)) return;
    const rule = this.#rule(op);
    const outVars = outputs.map((t) => {
      if (!isFloatTensor(t)) return null;
      const v = new Var();
      this.#vars.set(t, v);
      return v;
    });
    this.#push(op, rule, attrs, inputs, vars, outputs, outVars);
  }

  #alias(base: Tensor, view: Tensor): void {
    const group = this.#aliases.get(base.buffer) ?? new Set([base]);
    group.add(view);
    this.#aliases.set(base.buffer, group);
  }

  recordInPlace(op: string, dst: Tensor, inputs: readonly (Tensor | null)[], attrs: object): void {
    noteWrite(op, dst, inputs, attrs);
    const old = this.#varOf(dst);
    const vars = inputs.map((t) => (t ? this.#varOf(t) : null));
    if (old === null && vars.every((v) => v === null)) return;
    const rule = this.#rule(op);
    const v = new Var();
    this.#vars.set(dst, v);
    this.#push(op, rule, attrs, [dst, ...inputs], [old, ...vars], [], [v]);
    // Views of the same memory that overlap dst now hold (part of) the new dst: each gets a new version too.
    for (const t of this.#aliases.get(dst.buffer) ?? []) {
      const lo = Math.max(t.offset, dst.offset);
      const hi = Math.min(t.offset + t.size, dst.offset + dst.size);
      if (t === dst || lo >= hi) continue;
      const before = this.#vars.get(t) ?? null;
      const after = new Var();
      this.#vars.set(t, after);
      const at = { viewStart: lo - t.offset, dstStart: lo - dst.offset, n: hi - lo };
      this.#push('aliasWrite', this.#rule('aliasWrite'), at, [t, dst], [before, v], [], [after]);
    }
  }

  #rule(op: string): Rule {
    const rule = ruleOf(op);
    if (!rule)
      throw new AutogradError(
        `autograd: '${op}' has no backward rule, so it cannot run on tensors that need gradients (a decode-time op: run the full-sequence forward, or wrap it in noGrad)`,
      );
    return rule;
  }

  #push(
    op: string,
    rule: Rule,
    attrs: object,
    inputs: readonly (Tensor | null)[],
    vars: (Var | null)[],
    outputs: readonly Tensor[],
    outVars: (Var | null)[],
  ): void {
    const a = attrs as Record<string, unknown>;
    const want =
      rule.save?.(
        a,
        vars.map((v) => v !== null),
      ) ?? {};
    const savedIn = want.inputs === 'all' ? null : new Set(want.inputs ?? []);
    const savedOut = new Set(want.outputs ?? []);
    this.#nodes.push({
      op,
      rule,
      attrs: a,
      inputs: vars,
      shapes: inputs.map((t) => (t ? [...t.shape] : null)),
      saved: inputs.map((t, i) => (t && (!savedIn || savedIn.has(i)) ? save(t) : null)),
      outputs: outVars,
      savedOut: outputs.map((t, i) => (savedOut.has(i) ? save(t) : null)),
    });
  }

  /**
   * Backpropagates from `outputs` (seeded with `seeds`, f32 of their shapes; ownership passes to the tape)
   * and returns the f32 gradients of `wrt` (null where none reached it). Releases every saved tensor.
   */
  backward(
    outputs: readonly Tensor[],
    seeds: readonly Tensor[],
    wrt: readonly (Tensor | null)[],
  ): (Tensor | null)[] {
    const prev = setRecorder(null);
    try {
      return tidy(() => {
        outputs.forEach((o, i) => {
          const v = this.#vars.get(o);
          if (v) accumulate(v, seeds[i], new Set());
          else seeds[i].dispose();
        });
        for (let n = this.#nodes.length - 1; n >= 0; n--) {
          const node = this.#nodes[n];
          this.#nodes.length = n;
          try {
            step(node);
          } finally {
            release(node);
          }
        }
        const seen = new Map<Tensor, Tensor>();
        return wrt.map((t) => {
          if (!t) return null;
          const v = this.#vars.get(t);
          const g = v?.grad ?? null;
          if (!g) return seen.has(t) ? ops.clone(seen.get(t)!) : null;
          v!.grad = null;
          owned.delete(g);
          seen.set(t, g);
          return g;
        });
      });
    } finally {
      this.dispose();
      setRecorder(prev);
    }
  }

  /** Releases everything the tape holds (saved tensors, pending gradients). */
  dispose(): void {
    for (const n of this.#nodes) release(n);
    this.#nodes = [];
    for (const v of this.#vars.values()) {
      v.grad?.dispose();
      v.grad = null;
    }
    this.#vars.clear();
    this.#leaves.clear();
    this.#aliases.clear();
  }
}

/** A retained view of t's buffer that no scope disposes: it survives the model code's dispose/tidy. */
function save(t: Tensor): Saved {
  const view = keep(new Tensor(t.buffer.retain(), t.dtype, t.shape, t.offset));
  return { view, version: writeCount(t.buffer) };
}

function release(node: Node): void {
  for (const s of [...node.saved, ...node.savedOut]) s?.view.dispose();
  node.saved = [];
  node.savedOut = [];
}

function readSaved(node: Node, s: Saved | null): Tensor | null {
  if (!s) return null;
  if (overwritten(s.view, s.version))
    throw new AutogradError(
      `autograd: a tensor ${fmt(s.view.shape)} saved by '${node.op}' was overwritten in place (writeSlice/cache update) before backward; write into a fresh tensor instead`,
    );
  return s.view;
}

function step(node: Node): void {
  const grads = node.outputs.map((v) => {
    const g = v?.grad ?? null;
    if (v) v.grad = null;
    if (g) owned.delete(g);
    return g;
  });
  if (grads.every((g) => g === null)) return;
  const ctx: GradContext = {
    attrs: node.attrs,
    inputs: node.saved.map((s) => readSaved(node, s)),
    outputs: node.savedOut.map((s) => readSaved(node, s)),
    shapes: node.shapes,
    needs: node.inputs.map((v) => v !== null),
  };
  const held = new Set<Tensor>();
  // Kernels return activation gradients in the activation's dtype: one f32 copy each (a rule may return
  // one tensor for two inputs).
  const asF32 = new Map<Tensor, Tensor>();
  let result: readonly (Tensor | null | undefined)[] = [];
  try {
    result = tidy(() => node.rule.backward(ctx, grads));
    node.inputs.forEach((v, i) => {
      const g = result[i];
      if (!v || !g) return;
      const shape = node.shapes[i]!;
      if (!sameShape(g.shape, shape))
        throw new AutogradError(
          `autograd: the '${node.op}' rule returned a gradient ${fmt(g.shape)} for input ${i} of shape ${fmt(shape)}`,
        );
      if (g.dtype !== 'f32' && !asF32.has(g)) asF32.set(g, ops.cast(g, 'f32'));
      accumulate(v, asF32.get(g) ?? g, held);
    });
  } finally {
    for (const g of [...grads, ...result, ...asF32.values()])
      if (g && !held.has(g) && !owned.has(g)) g.dispose();
  }
}

/** Tensors now owned by some Var (so not to be disposed when a step ends). */
const owned = new WeakSet<Tensor>();

function accumulate(v: Var, g: Tensor, held: Set<Tensor>): void {
  if (!v.grad) {
    const own = owned.has(g) ? ops.clone(g) : g;
    v.grad = own;
    owned.add(own);
    held.add(own);
    return;
  }
  const sum = ops.add(v.grad, g);
  owned.delete(v.grad);
  v.grad.dispose();
  v.grad = sum;
  owned.add(sum);
  held.add(sum);
}
