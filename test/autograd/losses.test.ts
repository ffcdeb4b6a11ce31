/** The fused losses under the tape: cross-entropy (with ignored rows) and top-k KL, alone and combined. */
import { describe, it } from 'node:test';
import { crossEntropy, klTopK } from '../../src/autograd/index.js';
import * as ops from '../../src/runtime/ops.js';
import { cpu, gradCheck } from './gradcheck.js';

const [ROWS, VOCAB, K] = [5, 7, 3];
const TARGETS = [3, -100, 0, 6, 2];
const IDS = [
  [1, 4, 6],
  [0, 2, -1],
  [5, 3, 4],
  [-1, -1, -1],
  [6, 0, 2],
];
const VALUES = [0.3, -1.2, 2.0, 1.1, 0.4, 0, -0.5, 0.9, 0.2, 0, 0, 0, 1.5, -0.3, 0.7];

function ceRef(x: Float64Array): number {
  let sum = 0;
  let n = 0;
  TARGETS.forEach((t, r) => {
    if (t === -100) return;
    const row = x.subarray(r * VOCAB, (r + 1) * VOCAB);
    const m = Math.max(...row);
    sum += m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[t];
    n++;
  });
  return sum / n;
}

function klRef(x: Float64Array): number {
  const logSoftmax = (v: number[]) => {
    const m = Math.max(...v);
    const z = Math.log(v.reduce((a, u) => a + Math.exp(u - m), 0)) + m;
    return v.map((u) => u - z);
  };
  let sum = 0;
  let n = 0;
  IDS.forEach((ids, r) => {
    const keep = ids.map((id, j) => [id, j]).filter(([id]) => id >= 0);
    if (!keep.length) return;
    const lp = logSoftmax(keep.map(([, j]) => VALUES[r * K + j]));
    const lq = logSoftmax(keep.map(([id]) => x[r * VOCAB + id]));
    sum += lp.reduce((a, v, i) => a + Math.exp(v) * (v - lq[i]), 0);
    n++;
  });
  return sum / n;
}

describe('autograd: fused losses', () => {
  const targets = () => ops.tensor(cpu, Int32Array.from(TARGETS), [ROWS], 'i32');
  const teacher = () => ({
    ids: ops.tensor(cpu, Int32Array.from(IDS.flat()), [ROWS, K], 'i32'),
    values: ops.tensor(cpu, VALUES, [ROWS, K]),
  });
  const input = { shape: [ROWS, VOCAB], lo: -2, hi: 2 };
  it('cross-entropy with an ignored row', () =>
    gradCheck({ inputs: [input], run: ([x]) => crossEntropy(x, targets()), ref: ([x]) => [ceRef(x)] }));
  it('top-k KL with padded ids and an all-padding row', () =>
    gradCheck({
      inputs: [input],
      run: ([x]) => {
        const t = teacher();
        return klTopK(x, t.ids, t.values);
      },
      ref: ([x]) => [klRef(x)],
    }));
  it('LM loss + 0.5·KL through a shared projection (the loss gradient scales the saved one)', () =>
    gradCheck({
      inputs: [{ shape: [ROWS, 4] }, { shape: [VOCAB, 4] }],
      run: ([h, w]) => {
        const logits = ops.linear(h, w);
        const t = teacher();
        return ops.add(crossEntropy(logits, targets()), ops.scale(klTopK(logits, t.ids, t.values), 0.5));
      },
      ref: ([h, w]) => {
        const logits = new Float64Array(ROWS * VOCAB);
        for (let r = 0; r < ROWS; r++)
          for (let v = 0; v < VOCAB; v++)
            for (let c = 0; c < 4; c++) logits[r * VOCAB + v] += h[r * 4 + c] * w[v * 4 + c];
        return [ceRef(logits) + 0.5 * klRef(logits)];
      },
    }));
});
