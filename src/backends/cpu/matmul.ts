import type { MatmulDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { sharedF32Of, sharedF32Out } from './memory.js';
import { parallelFor } from './pool.js';

/**
 * Cache-blocked GEMM (the Goto/BLIS loop nest): C is computed in NC-column × KC-deep × MC-row blocks whose
 * operands are packed into contiguous f64 panels (MR-row slivers of A, NR-column slivers of B, zero padded),
 * so the MR×NR register-blocked micro-kernel streams both panels sequentially. Packing reads A and B through
 * strides, which is how every transpose is handled. Rows of m < SMALL_M (decode steps) skip packing.
 */
const MR = 4;
const NR = 8;
const KC = 256;
const MC = 128;
const NC = 1024;
const SMALL_M = 4;
/** Below this many flops a GEMM is not worth waking the workers for. */
const PARALLEL_FLOPS = 1 << 22;

/** A GEMM over shared memory: A[p, i, t] = a[p·aBatch + i·aRow + t·aCol], likewise B[p, t, j]. */
export interface GemmArgs {
  a: Float32Array;
  b: Float32Array;
  c: Float32Array;
  bias: Float32Array | null;
  batch: number;
  m: number;
  n: number;
  k: number;
  alpha: number;
  aBatch: number;
  aRow: number;
  aCol: number;
  bBatch: number;
  bRow: number;
  bCol: number;
  /** What a [lo, hi) range counts: 0 batches, 1 MR-row tiles, 2 NR-column tiles. */
  split: 0 | 1 | 2;
}

export function matmul(out: Tensor, a: Tensor, b: Tensor, bias: Tensor | null, d: MatmulDesc): void {
  const { batch, m, n, k } = d;
  const o = sharedF32Out(out);
  const g: GemmArgs = {
    a: sharedF32Of(a),
    b: sharedF32Of(b),
    c: o.data,
    bias: bias ? sharedF32Of(bias) : null,
    batch,
    m,
    n,
    k,
    alpha: d.alpha,
    aBatch: m * k,
    aRow: d.transA ? 1 : k,
    aCol: d.transA ? m : 1,
    bBatch: d.bBatched ? k * n : 0,
    bRow: d.transB ? 1 : n,
    bCol: d.transB ? k : 1,
    split: 0,
  };
  const flops = 2 * batch * m * n * k;
  if (flops < PARALLEL_FLOPS) gemmTask(g, 0, batch);
  else if (batch >= 4) parallelFor('gemm', g, batch, 1, gemmTask);
  else if (m >= n && m >= SMALL_M) {
    g.split = 1;
    parallelFor('gemm', g, Math.ceil(m / MR), 8, gemmTask);
  } else {
    g.split = 2;
    parallelFor('gemm', g, Math.ceil(n / NR), 8, gemmTask);
  }
  o.commit();
}

// Per-thread packing buffers, grown on demand.
let packA = new Float64Array(0);
let packB = new Float64Array(0);
const tile = new Float64Array(MR * NR);

/** Computes the part of C that [lo, hi) selects (see GemmArgs.split). */
export function gemmTask(g: GemmArgs, lo: number, hi: number): void {
  let [p0, p1, i0, i1, j0, j1] = [0, g.batch, 0, g.m, 0, g.n];
  if (g.split === 0) [p0, p1] = [lo, hi];
  else if (g.split === 1) [i0, i1] = [lo * MR, Math.min(g.m, hi * MR)];
  else [j0, j1] = [lo * NR, Math.min(g.n, hi * NR)];
  for (let p = p0; p < p1; p++) {
    if (g.m < SMALL_M) gemmSmall(g, p, j0, j1);
    else gemmBlocked(g, p, i0, i1, j0, j1);
  }
}

function gemmBlocked(g: GemmArgs, p: number, i0: number, i1: number, j0: number, j1: number): void {
  const { k } = g;
  if (packA.length < MC * KC) packA = new Float64Array(MC * KC);
  if (packB.length < KC * (NC + NR)) packB = new Float64Array(KC * (NC + NR));
  for (let jc = j0; jc < j1; jc += NC) {
    const nc = Math.min(NC, j1 - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = Math.min(KC, k - pc);
      packPanelB(g, p, pc, kc, jc, nc);
      for (let ic = i0; ic < i1; ic += MC) {
        const mc = Math.min(MC, i1 - ic);
        packPanelA(g, p, ic, mc, pc, kc);
        for (let jr = 0; jr < nc; jr += NR)
          for (let ir = 0; ir < mc; ir += MR) {
            micro(packA, ir * kc, packB, jr * kc, kc);
            store(g, p, ic + ir, jc + jr, Math.min(MR, mc - ir), Math.min(NR, nc - jr), pc === 0);
          }
      }
    }
  }
}

/** packA[(ir/MR)·kc·MR + t·MR + r] = A[ic + ir + r, pc + t], zero past the last row. */
function packPanelA(g: GemmArgs, p: number, ic: number, mc: number, pc: number, kc: number): void {
  const { a, aRow, aCol } = g;
  const base = p * g.aBatch;
  for (let ir = 0; ir < mc; ir += MR) {
    const dst = ir * kc;
    for (let r = 0; r < MR; r++) {
      if (ir + r >= mc) {
        for (let t = 0; t < kc; t++) packA[dst + t * MR + r] = 0;
        continue;
      }
      let src = base + (ic + ir + r) * aRow + pc * aCol;
      for (let t = 0; t < kc; t++, src += aCol) packA[dst + t * MR + r] = a[src];
    }
  }
}

/** packB[(jr/NR)·kc·NR + t·NR + c] = B[pc + t, jc + jr + c], zero past the last column. */
function packPanelB(g: GemmArgs, p: number, pc: number, kc: number, jc: number, nc: number): void {
  const { b, bRow, bCol } = g;
  const base = p * g.bBatch;
  for (let jr = 0; jr < nc; jr += NR) {
    const dst = jr * kc;
    for (let c = 0; c < NR; c++) {
      if (jr + c >= nc) {
        for (let t = 0; t < kc; t++) packB[dst + t * NR + c] = 0;
        continue;
      }
      let src = base + pc * bRow + (jc + jr + c) * bCol;
      for (let t = 0; t < kc; t++, src += bRow) packB[dst + t * NR + c] = b[src];
    }
  }
}

/** tile = Σ_t A-sliver[t] ⊗ B-sliver[t]: 4×8 accumulators kept in locals (registers). */
// biome-ignore format: the register tile reads best as a grid
function micro(A: Float64Array, ai: number, B: Float64Array, bi: number, kc: number): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c04 = 0, c05 = 0, c06 = 0, c07 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0, c14 = 0, c15 = 0, c16 = 0, c17 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c24 = 0, c25 = 0, c26 = 0, c27 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0, c34 = 0, c35 = 0, c36 = 0, c37 = 0;
  for (let t = 0; t < kc; t++, ai += MR, bi += NR) {
    const a0 = A[ai], a1 = A[ai + 1], a2 = A[ai + 2], a3 = A[ai + 3];
    const b0 = B[bi], b1 = B[bi + 1], b2 = B[bi + 2], b3 = B[bi + 3];
    const b4 = B[bi + 4], b5 = B[bi + 5], b6 = B[bi + 6], b7 = B[bi + 7];
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
    c04 += a0 * b4; c05 += a0 * b5; c06 += a0 * b6; c07 += a0 * b7;
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
    c14 += a1 * b4; c15 += a1 * b5; c16 += a1 * b6; c17 += a1 * b7;
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
    c24 += a2 * b4; c25 += a2 * b5; c26 += a2 * b6; c27 += a2 * b7;
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
    c34 += a3 * b4; c35 += a3 * b5; c36 += a3 * b6; c37 += a3 * b7;
  }
  tile[0] = c00; tile[1] = c01; tile[2] = c02; tile[3] = c03;
  tile[4] = c04; tile[5] = c05; tile[6] = c06; tile[7] = c07;
  tile[8] = c10; tile[9] = c11; tile[10] = c12; tile[11] = c13;
  tile[12] = c14; tile[13] = c15; tile[14] = c16; tile[15] = c17;
  tile[16] = c20; tile[17] = c21; tile[18] = c22; tile[19] = c23;
  tile[20] = c24; tile[21] = c25; tile[22] = c26; tile[23] = c27;
  tile[24] = c30; tile[25] = c31; tile[26] = c32; tile[27] = c33;
  tile[28] = c34; tile[29] = c35; tile[30] = c36; tile[31] = c37;
}

/** Adds alpha·tile to C (the first K block overwrites C and adds the bias). */
function store(g: GemmArgs, p: number, i: number, j: number, rows: number, cols: number, first: boolean) {
  const { c, n, alpha, bias } = g;
  for (let r = 0; r < rows; r++) {
    const row = (p * g.m + i + r) * n + j;
    for (let q = 0; q < cols; q++) {
      const v = alpha * tile[r * NR + q];
      c[row + q] = first ? v + (bias ? bias[j + q] : 0) : c[row + q] + v;
    }
  }
}

/** Few rows (decode): dot products when B's columns are contiguous in k, row updates otherwise. */
function gemmSmall(g: GemmArgs, p: number, j0: number, j1: number): void {
  const { a, b, c, m, n, k, alpha, bias, aRow, aCol, bRow, bCol } = g;
  const aBase = p * g.aBatch;
  const bBase = p * g.bBatch;
  for (let i = 0; i < m; i++) {
    const ai = aBase + i * aRow;
    const ci = (p * m + i) * n;
    if (bRow === 1) {
      for (let j = j0; j < j1; j++) {
        const bj = bBase + j * bCol;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let t = 0;
        for (; t + 3 < k; t += 4) {
          s0 += a[ai + t * aCol] * b[bj + t];
          s1 += a[ai + (t + 1) * aCol] * b[bj + t + 1];
          s2 += a[ai + (t + 2) * aCol] * b[bj + t + 2];
          s3 += a[ai + (t + 3) * aCol] * b[bj + t + 3];
        }
        for (; t < k; t++) s0 += a[ai + t * aCol] * b[bj + t];
        c[ci + j] = alpha * (s0 + s1 + s2 + s3) + (bias ? bias[j] : 0);
      }
    } else {
      const acc = new Float64Array(j1 - j0);
      for (let t = 0; t < k; t++) {
        const av = a[ai + t * aCol];
        let bt = bBase + t * bRow + j0 * bCol;
        for (let j = 0; j < acc.length; j++, bt += bCol) acc[j] += av * b[bt];
      }
      for (let j = j0; j < j1; j++) c[ci + j] = alpha * acc[j - j0] + (bias ? bias[j] : 0);
    }
  }
}
