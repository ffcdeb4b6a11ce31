/** Elementwise ops: unary (derivatives composed from forward ops), binary with broadcasting, affine. */
import type { BinaryOp, UnaryOp } from '../../runtime/backend.js';
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import { registerRule } from '../rule.js';
import { f32, geMask, scalar, sumTo } from './util.js';

const { mul, add, sub, affine } = ops;
/** 1 − t. */
const oneMinus = (t: Tensor) => affine(t, -1, 1);
/** 1 where x > 0 (0 at 0). */
const step = (x: Tensor) => ops.sub(scalar(x, 1), geMask(scalar(x, 0), x));

/** dy/dx of each unary op, from its input x, or from its output y where `fromOutput` (cheaper there). */
const DERIVATIVE: Record<UnaryOp, { fromOutput?: boolean; d: (v: Tensor) => Tensor }> = {
  neg: { d: (x) => scalar(x, -1) },
  exp: { fromOutput: true, d: (y) => y },
  log: { d: (x) => ops.div(scalar(x, 1), x) },
  sqrt: { fromOutput: true, d: (y) => ops.div(scalar(y, 0.5), y) },
  rsqrt: { fromOutput: true, d: (y) => affine(mul(mul(y, y), y), -0.5) },
  // x / (|x| + 1e-30): the sign, 0 at 0.
  abs: { d: (x) => ops.div(x, affine(ops.unary('abs', x), 1, 1e-30)) },
  sigmoid: { fromOutput: true, d: (y) => mul(y, oneMinus(y)) },
  tanh: { fromOutput: true, d: (y) => oneMinus(mul(y, y)) },
  relu: { d: (x) => step(x) },
  relu2: { d: (x) => affine(ops.unary('relu', x), 2) },
  silu: {
    d: (x) => {
      const s = ops.sigmoid(x);
      return mul(s, affine(mul(x, oneMinus(s)), 1, 1));
    },
  },
  // Φ(x) + x·φ(x). Φ = gelu(x)/x, with x nudged by 1e-30 so that 0 gives gelu(1e-30)/1e-30 = ½ (no erf op).
  gelu: {
    d: (x) => {
      const xs = affine(x, 1, 1e-30);
      const cdf = ops.div(ops.gelu(xs), xs);
      const pdf = affine(ops.exp(affine(mul(x, x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
      return add(cdf, mul(x, pdf));
    },
  },
  // y = ½x(1 + tanh u), u = c(x + 0.044715x³): dy = ½(1 + t) + ½x(1 − t²)·c(1 + 3·0.044715x²).
  gelu_tanh: {
    d: (x) => {
      const c = Math.sqrt(2 / Math.PI);
      const x2 = mul(x, x);
      const t = ops.unary('tanh', affine(mul(x, affine(x2, 0.044715, 1)), c));
      const du = affine(x2, 3 * 0.044715 * c, c);
      return add(affine(t, 0.5, 0.5), mul(mul(affine(x, 0.5), oneMinus(mul(t, t))), du));
    },
  },
  // y = x·σ(1.702x): dy = σ + 1.702·x·σ(1 − σ).
  quick_gelu: {
    d: (x) => {
      const s = ops.sigmoid(affine(x, 1.702));
      return add(s, mul(affine(x, 1.702), mul(s, oneMinus(s))));
    },
  },
  // softplus' = σ (also where softplus is the identity, x > 20: σ(20) rounds to 1 in f32).
  softplus: { d: (x) => ops.sigmoid(x) },
};

registerRule<{ op: UnaryOp }>('unary', {
  save: ({ op }) => (DERIVATIVE[op].fromOutput ? { outputs: [0] } : { inputs: [0] }),
  backward: ({ attrs, inputs, outputs }, [g]) => {
    const { d, fromOutput } = DERIVATIVE[attrs.op];
    return [mul(g!, d(f32((fromOutput ? outputs : inputs)[0]!)))];
  },
});

/** The gradients of a binary op's operands before un-broadcasting. */
const PARTIALS: Record<
  BinaryOp,
  (g: Tensor, a: Tensor, b: Tensor, needs: readonly boolean[]) => (Tensor | null)[]
> = {
  add: (g) => [g, g],
  sub: (g) => [g, affine(g, -1)],
  mul: (g, a, b, n) => [n[0] ? mul(g, b) : null, n[1] ? mul(g, a) : null],
  div: (g, a, b, n) => {
    const ga = ops.div(g, b);
    return [ga, n[1] ? affine(ops.div(mul(ga, a), b), -1) : null];
  },
  max: (g, a, b) => {
    const ga = mul(g, geMask(a, b));
    return [ga, sub(g, ga)];
  },
  min: (g, a, b) => {
    const ga = mul(g, geMask(b, a));
    return [ga, sub(g, ga)];
  },
  // silu(a)·b
  silu_mul: (g, a, b, n) => [
    n[0] ? mul(mul(g, b), DERIVATIVE.silu.d(a)) : null,
    n[1] ? mul(g, ops.silu(a)) : null,
  ],
};

const NEEDS_OPERANDS: ReadonlySet<BinaryOp> = new Set(['mul', 'div', 'max', 'min', 'silu_mul']);

registerRule<{ op: BinaryOp }>('binary', {
  // mul's gradients read the other operand only.
  save: ({ op }, needs) =>
    op === 'mul'
      ? { inputs: [...(needs[1] ? [0] : []), ...(needs[0] ? [1] : [])] }
      : NEEDS_OPERANDS.has(op)
        ? { inputs: 'all' }
        : {},
  backward: ({ attrs, inputs, shapes, needs }, [g]) => {
    // An operand that was not saved is never read (the gradient that would need it is not wanted).
    const operand = (t: Tensor | null) => (t ? f32(t) : g!);
    const [a, b] = NEEDS_OPERANDS.has(attrs.op) ? [operand(inputs[0]), operand(inputs[1])] : [g!, g!];
    const parts = PARTIALS[attrs.op](g!, a, b, needs);
    return parts.map((p, i) => (p && needs[i] ? sumTo(p, shapes[i]!) : null));
  },
});

registerRule<{ scale: number }>('affine', { backward: ({ attrs }, [g]) => [affine(g!, attrs.scale)] });
