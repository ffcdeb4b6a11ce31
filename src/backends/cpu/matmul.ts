import type { MatmulDesc } from '../../runtime/backend.js';
import type { Tensor } from '../../runtime/tensor.js';
import { gemm, MR, NR } from './gemm.js';
import { cpuKernels } from './kernels.js';
import { rawOf, sharedF32Of, sharedF32Out } from './memory.js';
import { parallelFor } from './pool.js';

/** Below this many flops a GEMM is not worth waking the workers for. */
const PARALLEL_FLOPS = 1 << 22;

/** A batched GEMM over shared memory: A[p, i, t] = a[p·aBatch + i·aRow + t·aCol], likewise B[p, t, j]. */
export interface GemmArgs {
  a: Float32Array;
  /** Raw bf16/f16 elements (bHalf) when the fast kernels convert them, else f32. */
  b: Float32Array | Uint16Array;
  bHalf?: 'bf16' | 'f16';
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

/**
 * Transposes become strides; the work is split over batches, row tiles or column tiles. bf16/f16 weights
 * stay in their dtype for the fast kernels, which convert them while packing (the reference converts first).
 */
export function matmul(out: Tensor, a: Tensor, b: Tensor, bias: Tensor | null, d: MatmulDesc): void {
  const { batch, m, n, k } = d;
  const o = sharedF32Out(out);
  const half = (b.dtype === 'bf16' || b.dtype === 'f16') && cpuKernels() !== 'ts' ? b.dtype : undefined;
  const g: GemmArgs = {
    a: sharedF32Of(a),
    b: half ? (rawOf(b) as Uint16Array) : sharedF32Of(b),
    bHalf: half,
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
  else if (m >= n && m >= MR) {
    g.split = 1;
    parallelFor('gemm', g, Math.ceil(m / MR), 8, gemmTask);
  } else {
    g.split = 2;
    parallelFor('gemm', g, Math.ceil(n / NR), 8, gemmTask);
  }
  o.commit();
}

/** Computes the part of C that [lo, hi) selects (see GemmArgs.split). */
export function gemmTask(g: GemmArgs, lo: number, hi: number): void {
  let [p0, p1, i0, i1, j0, j1] = [0, g.batch, 0, g.m, 0, g.n];
  if (g.split === 0) [p0, p1] = [lo, hi];
  else if (g.split === 1) [i0, i1] = [lo * MR, Math.min(g.m, hi * MR)];
  else [j0, j1] = [lo * NR, Math.min(g.n, hi * NR)];
  for (let p = p0; p < p1; p++)
    gemm({
      a: g.a,
      aOff: p * g.aBatch + i0 * g.aRow,
      aRow: g.aRow,
      aCol: g.aCol,
      b: g.b,
      bHalf: g.bHalf,
      bOff: p * g.bBatch + j0 * g.bCol,
      bRow: g.bRow,
      bCol: g.bCol,
      c: g.c,
      cOff: (p * g.m + i0) * g.n + j0,
      ldc: g.n,
      m: i1 - i0,
      n: j1 - j0,
      k: g.k,
      alpha: g.alpha,
      bias: g.bias,
      biasOff: j0,
      accumulate: false,
    });
}
