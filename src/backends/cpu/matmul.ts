import type { MatmulDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { f32Of, f32Out } from './memory.js';

/** rows×cols row-major → cols×rows row-major. */
function transposed(src: Float32Array, offset: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[offset + r * cols + c];
  return out;
}

/**
 * C = alpha·A·B (+bias). Both operands are brought to "rows of length k" form (A as [m, k], B as [n, k]) so
 * the inner loop is a contiguous dot product.
 */
export function matmul(out: Tensor, a: Tensor, b: Tensor, bias: Tensor | null, d: MatmulDesc): void {
  const { batch, m, n, k, alpha } = d;
  const av = f32Of(a);
  const bv = f32Of(b);
  const bi = bias ? f32Of(bias) : null;
  const o = f32Out(out);
  let bRows: Float32Array | null = null;
  for (let p = 0; p < batch; p++) {
    const A = d.transA ? transposed(av, p * m * k, k, m) : av.subarray(p * m * k, (p + 1) * m * k);
    if (!bRows || d.bBatched) {
      const off = d.bBatched ? p * n * k : 0;
      bRows = d.transB ? bv.subarray(off, off + n * k) : transposed(bv, off, k, n);
    }
    gemmNT(o.data, p * m * n, A, bRows, m, n, k, alpha, bi);
  }
  o.commit();
}

/** C[i, j] = alpha·dot(A[i, :], B[j, :]) + bias[j]. */
function gemmNT(
  C: Float32Array,
  cOff: number,
  A: Float32Array,
  B: Float32Array,
  m: number,
  n: number,
  k: number,
  alpha: number,
  bias: Float32Array | null,
): void {
  const k4 = k - (k % 4);
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    for (let j = 0; j < n; j++) {
      const bj = j * k;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let t = 0;
      for (; t < k4; t += 4) {
        s0 += A[ai + t] * B[bj + t];
        s1 += A[ai + t + 1] * B[bj + t + 1];
        s2 += A[ai + t + 2] * B[bj + t + 2];
        s3 += A[ai + t + 3] * B[bj + t + 3];
      }
      for (; t < k; t++) s0 += A[ai + t] * B[bj + t];
      C[cOff + i * n + j] = alpha * (s0 + s1 + s2 + s3) + (bias ? bias[j] : 0);
    }
  }
}
