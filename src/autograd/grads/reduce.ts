/** Reductions (sum, mean, max over one axis) and softmax over the last axis. */
import * as ops from '../../runtime/ops.js';
import { registerRule } from '../rule.js';
import { broadcastTo, f32, geMask } from './util.js';

interface ReduceAttrs {
  op: 'sum' | 'mean' | 'max';
  axis: number;
  keepDims: boolean;
}

registerRule<ReduceAttrs>('reduce', {
  save: ({ op }) => (op === 'max' ? { inputs: [0], outputs: [0] } : {}),
  backward: ({ attrs, shapes, inputs, outputs }, [g]) => {
    const shape = shapes[0]!;
    const kept = [...shape];
    kept[attrs.axis] = 1;
    const gk = g!.reshape(kept);
    if (attrs.op === 'sum') return [broadcastTo(gk, shape)];
    if (attrs.op === 'mean') return [broadcastTo(ops.affine(gk, 1 / shape[attrs.axis]), shape)];
    // max: every element equal to the maximum receives the gradient (ties share it in full).
    const x = f32(inputs[0]!);
    const m = f32(outputs[0]!).reshape(kept);
    return [ops.mul(geMask(x, m), gk)];
  },
});

/** dx = y·(g − Σ g·y) over the last axis. */
registerRule('softmax', {
  save: () => ({ outputs: [0] }),
  backward: ({ outputs }, [g]) => {
    const y = f32(outputs[0]!);
    const dot = ops.sum(ops.mul(g!, y), -1, true);
    return [ops.mul(y, ops.sub(g!, dot))];
  },
});
