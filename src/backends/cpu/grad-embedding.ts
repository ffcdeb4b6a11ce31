import type { Tensor } from '../../runtime/tensor.js';
import { f32Of, rawOf, writeF64 } from './memory.js';

/** dTable[ids[i], :] += dOut[i, :] over every position i (f64 sums, f32 result). */
export function embeddingBackward(dTable: Tensor, dOut: Tensor, ids: Tensor): void {
  const [vocab, dim] = dTable.shape;
  const idv = rawOf(ids) as Int32Array;
  const go = f32Of(dOut);
  const acc = new Float64Array(vocab * dim);
  for (let i = 0; i < idv.length; i++) {
    const id = idv[i];
    if (id < 0 || id >= vocab)
      throw new RangeError(`embeddingBackward: id ${id} is outside the vocabulary of ${vocab}`);
    for (let t = 0; t < dim; t++) acc[id * dim + t] += go[i * dim + t];
  }
  writeF64(dTable, acc);
}
