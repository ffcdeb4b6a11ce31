/** matmul (and so linear, which is reshape + matmul): C = α·op(A)·op(B) + bias. */
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import { registerRule } from '../rule.js';
import { f32 } from './util.js';

interface MatmulAttrs {
  transA: boolean;
  transB: boolean;
  alpha: number;
}

registerRule<MatmulAttrs>('matmul', {
  // dA reads B and dB reads A: keep each only for the other's gradient.
  save: (_, needs) => ({ inputs: [...(needs[1] ? [0] : []), ...(needs[0] ? [1] : [])] }),
  backward: ({ attrs, inputs, shapes, needs }, [g]) => {
    const { transA, transB, alpha } = attrs;
    const n = g!.shape[g!.rank - 1];
    // dA: dop(A) = α·g·op(B)ᵀ, transposed back when A is stored transposed.
    let ga: Tensor | null = null;
    if (needs[0]) {
      ga = ops.matmul(g!, f32(inputs[1]!), { transB: !transB, alpha });
      if (transA) ga = ops.transpose(ga);
    }
    // dB: op(B)ᵀ-shaped products of A and g; a weight shared by the batch sums over it.
    let gb: Tensor | null = null;
    if (needs[1]) {
      const a = f32(inputs[0]!);
      const shared = shapes[1]!.length === 2 && a.rank > 2;
      const product = (x: Tensor, y: Tensor) =>
        transB
          ? ops.matmul(y, x, { transA: true, transB: transA, alpha })
          : ops.matmul(x, y, { transA: !transA, alpha });
      if (shared && !transA) {
        const k = a.shape[a.rank - 1];
        gb = product(a.reshape([-1, k]), g!.reshape([-1, n]));
      } else {
        gb = product(a, g!);
        if (shared) gb = ops.sum(gb.reshape([-1, ...shapes[1]!]), 0);
      }
    }
    const gBias = needs[2] ? ops.sum(g!.reshape([-1, n]), 0).reshape(shapes[2]!) : null;
    return [ga, gb, gBias];
  },
});
