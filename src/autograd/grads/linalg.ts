/** matmul (and so linear, which is reshape + matmul): C = α·op(A)·op(B) + bias. */
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import { registerRule } from '../rule.js';

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
    // Each product takes g in the operands' dtype (matmul's operands share one): bf16/f16 operands multiply on
    // the tensor cores into an f32 gradient (g rounded once, as PyTorch's autocast backward does) rather than
    // widened copies.
    let gLow: Tensor | null = null;
    const gLike = (x: Tensor) => {
      if (x.dtype === 'f32') return g!;
      gLow ??= ops.cast(g!, x.dtype);
      return gLow;
    };
    const mm = (x: Tensor, y: Tensor, o: ops.MatmulOptions) =>
      ops.matmul(x, y, { ...o, alpha, outDtype: 'f32' });
    // dA: dop(A) = α·g·op(B)ᵀ, transposed back when A is stored transposed.
    let ga: Tensor | null = null;
    if (needs[0]) {
      ga = mm(gLike(inputs[1]!), inputs[1]!, { transB: !transB });
      if (transA) ga = ops.transpose(ga);
    }
    // dB: op(B)ᵀ-shaped products of A and g; a weight shared by the batch sums over it.
    let gb: Tensor | null = null;
    if (needs[1]) {
      const a = inputs[0]!;
      const gOfA = gLike(a);
      const shared = shapes[1]!.length === 2 && a.rank > 2;
      const product = (x: Tensor, y: Tensor) =>
        transB ? mm(y, x, { transA: true, transB: transA }) : mm(x, y, { transA: !transA });
      if (shared && !transA) {
        const k = a.shape[a.rank - 1];
        gb = product(a.reshape([-1, k]), gOfA.reshape([-1, n]));
      } else {
        gb = product(a, gOfA);
        if (shared) gb = ops.sum(gb.reshape([-1, ...shapes[1]!]), 0);
      }
    }
    const gBias = needs[2] ? ops.sum(g!.reshape([-1, n]), 0).reshape(shapes[2]!) : null;
    return [ga, gb, gBias];
  },
});
