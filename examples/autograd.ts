/**
 * Autograd on the runtime: a tiny two-layer network learns y = sin(3x) with valueAndGrad and plain gradient
 * descent, every op an ordinary runtime op (so the same code trains on the CUDA backend).
 *
 *   npx tsx examples/autograd.ts
 */

import { noGrad, valueAndGrad } from '../src/autograd/index.js';
import { cpuBackend } from '../src/backends/cpu/index.js';
import * as ops from '../src/runtime/ops.js';
import { tidy } from '../src/runtime/scope.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { seededUniform } from '../src/util/random.js';

const be = cpuBackend();
const uniform = seededUniform(1);
const rand = () => uniform() * 2 - 1;
const init = (shape: number[], s: number) =>
  ops.tensor(
    be,
    Array.from({ length: shape[0] * (shape[1] ?? 1) }, () => rand() * s),
    shape,
  );

const xs = Array.from({ length: 64 }, (_, i) => i / 32 - 1);
const x = ops.tensor(be, xs, [64, 1]);
const y = ops.tensor(
  be,
  xs.map((v) => Math.sin(3 * v)),
  [64, 1],
);
const params: Tensor[] = [init([32, 1], 1), init([32], 0.5), init([1, 32], 0.3), init([1], 0)];

for (let step = 0; step <= 2000; step++) {
  const [w1, b1, w2, b2] = params;
  const { value, grads } = valueAndGrad(() => {
    const h = ops.unary('tanh', ops.linear(x, w1, b1));
    const err = ops.sub(ops.linear(h, w2, b2), y);
    return ops.mean(ops.mean(ops.mul(err, err), -1), -1);
  }, params);
  // The update itself is not part of any gradient.
  noGrad(() =>
    params.forEach((p, i) => {
      const next = tidy(() => ops.sub(p, ops.scale(grads[i], 0.1)));
      p.dispose();
      params[i] = next;
      grads[i].dispose();
    }),
  );
  if (step % 500 === 0) console.log(`step ${step}: mean squared error ${value.toFixed(5)}`);
}
