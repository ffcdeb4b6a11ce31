/**
 * Embedding lookup: the table's gradient adds row i of g into row ids[i] (the backend's scatter-add kernel,
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
