/**
 * Embedding lookup (and bags of lookups, embeddingBag: each id's row takes its bag's gradient, divided by the
 * bag's size for 'mean'): the table's gradient adds row i of g into row ids[i] (the backend's scatter-add kernel,
 * embeddingBackward). Without one this reads the ids on the host, sums the rows of each distinct id with one
 * matmul against a host-built [distinct, n] indicator, and writes those sums into a zero table by runs of
 * consecutive ids.
 */
import * as gradOps from '../../runtime/grad-ops.js';
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import { AutogradError, registerRule } from '../rule.js';
import { kernelsEnabled } from './composite.js';

function readIds(ids: Tensor): Int32Array {
  const read = ids.backend.downloadSync;
  if (!read) throw new AutogradError(`embedding backward: the ${ids.backend.name} backend cannot read ids`);
  return read.call(ids.backend, ids) as Int32Array;
}

export function scatterAddRows(g: Tensor, ids: Tensor, vocab: number): Tensor {
  const dim = g.shape[g.rank - 1];
  const idv = readIds(ids);
  const distinct = [...new Set(idv)].sort((a, b) => a - b);
  const slot = new Map(distinct.map((id, j) => [id, j]));
  const indicator = new Float32Array(distinct.length * idv.length);
  idv.forEach((id, i) => {
    indicator[slot.get(id)! * idv.length + i] = 1;
  });
  const sel = ops.tensor(g.backend, indicator, [distinct.length, idv.length]);
  const sums = ops.matmul(sel, g.reshape([idv.length, dim]));
  const table = ops.zeros(g.backend, [vocab, dim]);
  for (let j = 0; j < distinct.length; ) {
    let e = j + 1;
    while (e < distinct.length && distinct[e] === distinct[e - 1] + 1) e++;
    ops.writeSlice(table, ops.slice(sums, 0, j, e), 0, distinct[j]);
    j = e;
  }
  return table;
}

registerRule('embedding', {
  save: () => ({ inputs: [1] }),
  backward: ({ inputs, shapes }, [g]) => {
    const [ids, vocab] = [inputs[1]!, shapes[0]![0]];
    const kernel = kernelsEnabled() && g!.backend.embeddingBackward;
    return [kernel ? gradOps.embeddingBackward(g!, ids, vocab) : scatterAddRows(g!, ids, vocab), null];
  },
});

registerRule<{ mode: 'sum' | 'mean' }>('embeddingBag', {
  save: () => ({ inputs: [1, 2] }),
  backward: ({ attrs, inputs, shapes }, [g]) => {
    const [ids, offsets, rows] = [inputs[1]!, inputs[2]!, shapes[0]![0]];
    // Each id's bag, and for 'mean' its bag's 1/size, from the offsets (small: one i32 per bag).
    const off = readIds(offsets);
    const bag = new Int32Array(ids.size);
    const scale = new Float32Array(off.length - 1);
    for (let r = 0; r + 1 < off.length; r++) {
      bag.fill(r, off[r], off[r + 1]);
      scale[r] = attrs.mode === 'mean' && off[r + 1] > off[r] ? 1 / (off[r + 1] - off[r]) : 1;
    }
    const perBag = attrs.mode === 'mean' ? ops.mul(g!, ops.tensor(g!.backend, scale, [scale.length, 1])) : g!;
    const perId = ops.embedding(perBag, ops.tensor(g!.backend, bag, [bag.length], 'i32'));
    const kernel = kernelsEnabled() && g!.backend.embeddingBackward;
    return [
      kernel ? gradOps.embeddingBackward(perId, ids, rows) : scatterAddRows(perId, ids, rows),
      null,
      null,
    ];
  },
});
