/**
 * The ToMe matching in plain JavaScript, in f64 over one frame (the host implementation src/nn/tome.ts replaced):
 * the reference the device matching is checked against. Also reports the smallest decision margin, the gap
 * that a rounding difference between f64 and the device's f32 would have to cross to change the groups.
 */
import { tomeSchedule } from '../../src/nn/tome.js';

/** The groups of one frame (output tokens in the official order) from its head-averaged metric [tokens, dim]. */
export function referenceGroups(
  metric: ArrayLike<number>,
  tokens: number,
  dim: number,
  keep: number,
): { groups: number[][]; margin: number } {
  let groups: number[][] = Array.from({ length: tokens }, (_, i) => [i]);
  let margin = Number.POSITIVE_INFINITY;
  for (const r of tomeSchedule(tokens, keep)) {
    const unit = groups.map((g) => {
      const s = new Float64Array(dim);
      for (const i of g) for (let d = 0; d < dim; d++) s[d] += metric[i * dim + d];
      const n = Math.hypot(...s);
      return s.map((v) => v / n);
    });
    const nA = Math.ceil(groups.length / 2);
    const nB = Math.floor(groups.length / 2);
    const best = new Float64Array(nA).fill(Number.NEGATIVE_INFINITY);
    const partner = new Int32Array(nA);
    for (let a = 0; a < nA; a++) {
      let second = Number.NEGATIVE_INFINITY;
      for (let b = 0; b < nB; b++) {
        let s = 0;
        for (let d = 0; d < dim; d++) s += unit[2 * a][d] * unit[2 * b + 1][d];
        if (s > best[a]) {
          second = best[a];
          best[a] = s;
          partner[a] = b;
        } else second = Math.max(second, s);
      }
      margin = Math.min(margin, best[a] - second);
    }
    const edges = Array.from({ length: nA }, (_, a) => a).sort((x, y) => best[y] - best[x] || x - y);
    for (let i = 1; i < nA; i++) margin = Math.min(margin, best[edges[i - 1]] - best[edges[i]]);
    const bGroups = Array.from({ length: nB }, (_, b) => [...groups[2 * b + 1]]);
    for (const a of edges.slice(0, r)) bGroups[partner[a]].push(...groups[2 * a]);
    groups = [...edges.slice(r).map((a) => groups[2 * a]), ...bGroups];
  }
  return { groups, margin };
}
