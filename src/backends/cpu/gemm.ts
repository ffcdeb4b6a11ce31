/**
 * The single-thread GEMM core shared by matmul, attention and the SSD scan: the Goto/BLIS loop nest. C is
 * computed in NC-column × KC-deep × MC-row blocks whose operands are packed into contiguous f64 panels (MR-row
 * slivers of A, NR-column slivers of B, zero padded), so the MR×NR register-blocked micro-kernel streams both
 * panels sequentially. Packing reads A and B through strides, which is how transposes and strided views
 * (one head of a [seq, heads, dim] tensor) are handled without copies. Fewer than MR rows (decode) skip
 * packing. This is the reference: when faster kernels are in use (kernels.ts) and the operands are f32, they
 * run instead.
 */
import { fastGemm } from './kernels.js';

export const MR = 4;
export const NR = 8;
const KC = 256;
const MC = 128;
const NC = 1024;

/**
 * C[i, j] = alpha·Σ_t A[i, t]·B[t, j] + bias[j] (or C[i, j] += … when `accumulate`), where
 * A[i, t] = a[aOff + i·aRow + t·aCol], B[t, j] = b[bOff + t·bRow + j·bCol], C[i, j] = c[cOff + i·ldc + j]
 * and bias[j] = bias[biasOff + j].
 */
export interface Gemm {
  a: Float32Array | Float64Array;
  aOff: number;
  aRow: number;
  aCol: number;
  /** Uint16Array: raw bf16/f16 elements (bHalf), which only the fast kernels read. */
  b: Float32Array | Float64Array | Uint16Array;
  bHalf?: 'bf16' | 'f16';
  bOff: number;
  bRow: number;
  bCol: number;
  c: Float32Array | Float64Array;
  cOff: number;
  ldc: number;
  m: number;
  n: number;
  k: number;
  alpha: number;
  bias: Float32Array | null;
  biasOff: number;
  accumulate: boolean;
}

export function gemm(g: Gemm): void {
  if (g.m <= 0 || g.n <= 0 || fastGemm(g)) return;
  if (g.b instanceof Uint16Array) throw new Error('gemm: a bf16/f16 B operand needs the fast CPU kernels');
  if (g.m < MR) gemmSmall(g);
  else gemmBlocked(g);
}

// Per-thread packing buffers (each worker has its own module instance), grown on demand.
let packA = new Float64Array(0);
let packB = new Float64Array(0);
const tile = new Float64Array(MR * NR);

function gemmBlocked(g: Gemm): void {
  const { m, n, k } = g;
  if (packA.length < MC * KC) packA = new Float64Array(MC * KC);
  if (packB.length < KC * NC) packB = new Float64Array(KC * NC);
  if (k === 0) {
    tile.fill(0);
    for (let i = 0; i < m; i += MR)
      for (let j = 0; j < n; j += NR) store(g, i, j, Math.min(MR, m - i), Math.min(NR, n - j), true);
    return;
  }
  for (let jc = 0; jc < n; jc += NC) {
    const nc = Math.min(NC, n - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = Math.min(KC, k - pc);
      packPanelB(g, pc, kc, jc, nc);
      for (let ic = 0; ic < m; ic += MC) {
        const mc = Math.min(MC, m - ic);
        packPanelA(g, ic, mc, pc, kc);
        for (let jr = 0; jr < nc; jr += NR)
          for (let ir = 0; ir < mc; ir += MR) {
            micro(packA, ir * kc, packB, jr * kc, kc);
            store(g, ic + ir, jc + jr, Math.min(MR, mc - ir), Math.min(NR, nc - jr), pc === 0);
          }
      }
    }
  }
}

/** packA[(ir/MR)·kc·MR + t·MR + r] = A[ic + ir + r, pc + t], zero past the last row. */
function packPanelA(g: Gemm, ic: number, mc: number, pc: number, kc: number): void {
  const { a, aRow, aCol } = g;
  for (let ir = 0; ir < mc; ir += MR) {
    const dst = ir * kc;
    for (let r = 0; r < MR; r++) {
      if (ir + r >= mc) {
        for (let t = 0; t < kc; t++) packA[dst + t * MR + r] = 0;
        continue;
      }
      let src = g.aOff + (ic + ir + r) * aRow + pc * aCol;
      for (let t = 0; t < kc; t++, src += aCol) packA[dst + t * MR + r] = a[src];
    }
  }
}

/** packB[(jr/NR)·kc·NR + t·NR + c] = B[pc + t, jc + jr + c], zero past the last column. */
function packPanelB(g: Gemm, pc: number, kc: number, jc: number, nc: number): void {
  const { b, bRow, bCol } = g;
  for (let jr = 0; jr < nc; jr += NR) {
    const dst = jr * kc;
    for (let c = 0; c < NR; c++) {
      if (jr + c >= nc) {
        for (let t = 0; t < kc; t++) packB[dst + t * NR + c] = 0;
        continue;
      }
      let src = g.bOff + pc * bRow + (jc + jr + c) * bCol;
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

/** Adds alpha·tile to C; the first K block overwrites C (unless accumulating) and adds the bias. */
function store(g: Gemm, i: number, j: number, rows: number, cols: number, first: boolean): void {
  const { c, alpha, bias } = g;
  const overwrite = first && !g.accumulate;
  for (let r = 0; r < rows; r++) {
    const row = g.cOff + (i + r) * g.ldc + j;
    for (let q = 0; q < cols; q++) {
      let v = alpha * tile[r * NR + q];
      if (first && bias) v += bias[g.biasOff + j + q];
      c[row + q] = overwrite ? v : c[row + q] + v;
    }
  }
}

/** Few rows (decode): dot products when B's columns are contiguous in k, row updates otherwise. */
function gemmSmall(g: Gemm): void {
  const { a, b, c, m, n, k, alpha, bias, aRow, aCol, bRow, bCol } = g;
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    const ai = g.aOff + i * aRow;
    if (bRow === 1) {
      for (let j = 0; j < n; j++) {
        const bj = g.bOff + j * bCol;
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
        acc[j] = s0 + s1 + s2 + s3;
      }
    } else {
      acc.fill(0);
      for (let t = 0; t < k; t++) {
        const av = a[ai + t * aCol];
        let bt = g.bOff + t * bRow;
        for (let j = 0; j < n; j++, bt += bCol) acc[j] += av * b[bt];
      }
    }
    const ci = g.cOff + i * g.ldc;
    for (let j = 0; j < n; j++) {
      const v = alpha * acc[j] + (bias ? bias[g.biasOff + j] : 0);
      c[ci + j] = g.accumulate ? c[ci + j] + v : v;
    }
  }
}
