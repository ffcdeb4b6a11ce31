// Mamba-2 SSD, following mamba_ssm's chunked algorithm (research/engines.md §4), in three kernels per run
// of chunks:
//   1. ssd_chunk_state: per (chunk, head) the inclusive cumsum of dt·A inside the chunk (f32, kept in the
//      workspace) and the chunk's own final state from a zero start, Σ_t exp(dA_last − dA_t)·dt_t·x_tᵀB_t.
//   2. ssd_state_pass: sequential over chunks, turns the per-chunk states into the state at the start of
//      each chunk (in place) and carries the running state to the next run of chunks / the final state.
//   3. ssd_chunk_scan: per (chunk, head, 64-token block) y = exp(dA_t)·C_t·S_start
//      + Σ_{s≤t} (C_t·B_s)·exp(dA_t − dA_s)·dt_s·x_s + D·x_t.
// The matrix products run on tensor cores (WMMA, bf16 in, f32 accumulate) for bf16 operands and on f32
// CUDA cores for f32 operands; everything else is f32. The chunk-state product's f32 operand is split into two
// bf16 parts, so the carried state is as precise as an f32 recurrence over the bf16 inputs (y keeps the bf16
// rounding of its operands, as mamba_ssm's kernels do). Runs of chunks bound the workspace at long lengths.
#include "ssd.h"

#include <mma.h>

#include <algorithm>
#include <type_traits>

#include "mma_util.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kTok = 64;  // tokens per tile
constexpr size_t kRunBudget = size_t(256) << 20;

__host__ __device__ constexpr size_t round128(size_t n) { return (n + 127) & ~size_t(127); }

__device__ __forceinline__ float load_param(const void *p, DT t, int i) {
  return t == DT::F32 ? static_cast<const float *>(p)[i] : __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
}

// C[M×N] (f32, row-major, ldc) += A[M×K]·B[K×N]. A is row-major (A[m·lda + k]) or, when ACol, column-major
// (A[k·lda + m]); B is row-major (B[k·ldb + n]) or, when BCol, column-major (B[n·ldb + k]). M, N, K are
// multiples of 16; the whole block cooperates and the caller synchronises around it.
// When `Alo` is given (same layout as A), C += (A + Alo)·B: A holds an f32 operand's bf16 rounding and Alo the
// rounding of the remainder, which brings the product to ~2⁻¹⁶ relative precision for the price of a second MMA.
template <bool ACol, bool BCol>
__device__ void tile_mm(const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *B, int ldb, float *C, int ldc, int M,
                        int N, int K, const __nv_bfloat16 *Alo = nullptr) {
  using namespace nvcuda;
  using LA = std::conditional_t<ACol, wmma::col_major, wmma::row_major>;
  using LB = std::conditional_t<BCol, wmma::col_major, wmma::row_major>;
  const int warp = threadIdx.x >> 5, nw = blockDim.x >> 5, fn = N / 16;
  for (int f = warp; f < (M / 16) * fn; f += nw) {
    const int m0 = (f / fn) * 16, n0 = (f % fn) * 16;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(acc, C + m0 * ldc + n0, ldc, wmma::mem_row_major);
    for (int k = 0; k < K; k += 16) {
      const int at = ACol ? k * lda + m0 : m0 * lda + k;
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, LA> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LB> b;
      wmma::load_matrix_sync(a, A + at, lda);
      wmma::load_matrix_sync(b, BCol ? B + n0 * ldb + k : B + k * ldb + n0, ldb);
      wmma::mma_sync(acc, a, b, acc);
      if (Alo) {
        wmma::load_matrix_sync(a, Alo + at, lda);
        wmma::mma_sync(acc, a, b, acc);
      }
    }
    wmma::store_matrix_sync(C + m0 * ldc + n0, acc, ldc, wmma::mem_row_major);
  }
}

template <bool ACol, bool BCol>
__device__ void tile_mm(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M, int N, int K,
                        const float * = nullptr) {
  for (int idx = threadIdx.x; idx < M * N; idx += blockDim.x) {
    const int m = idx / N, n = idx % N;
    float s = 0.f;
    for (int k = 0; k < K; ++k) s += (ACol ? A[k * lda + m] : A[m * lda + k]) * (BCol ? B[n * ldb + k] : B[k * ldb + n]);
    C[m * ldc + n] += s;
  }
}

struct SsdParams {
  const void *x, *B, *C, *D;
  DT dDt;
  void *y;
  const float *dt, *A;
  float *dAcs;    // [batch, heads, run, Q]
  float *states;  // [batch, run, heads, P, N]
  float *cb;      // [batch, run, groups, Q, Q] (only the s ≤ t blocks are written)
  const float *init;
  float *fin;
  int batch, L, H, P, G, N, Q, run, c0, nc;
};

/** Inclusive prefix sum of v[0..n) in shared memory by warp 0 (n ≤ 256, a multiple of 32). */
__device__ void warp_scan_inplace(float *v, int n) {
  const int lane = threadIdx.x & 31, per = n / 32;
  float run = 0.f;
  for (int e = 0; e < per; ++e) {
    run += v[lane * per + e];
    v[lane * per + e] = run;
  }
  float incl = run;
  for (int o = 1; o < 32; o <<= 1) {
    const float t = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += t;
  }
  const float excl = incl - run;
  for (int e = 0; e < per; ++e) v[lane * per + e] += excl;
}

/**
 * For every i in [0, TOTAL) (a multiple of kThreads, split over the block): store(i, load(i)). Loads are
 * issued 8 at a time before their stores so that each thread keeps several global reads in flight (these
 * kernels are otherwise latency-bound on their tile loads).
 */
template <int TOTAL, typename Load, typename Store>
__device__ __forceinline__ void batched(Load load, Store store) {
  static_assert(TOTAL % (8 * kThreads) == 0, "tile size");
#pragma unroll 1
  for (int it0 = 0; it0 < TOTAL / kThreads; it0 += 8) {
    float v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = load((it0 + u) * kThreads + static_cast<int>(threadIdx.x));
#pragma unroll
    for (int u = 0; u < 8; ++u) store((it0 + u) * kThreads + static_cast<int>(threadIdx.x), v[u]);
  }
}

/** dst[r][c] = T(get(r, c)) over a 64×COLS tile; zero outside r < rows, c < cols. */
template <typename T, int COLS, typename Get>
__device__ __forceinline__ void fill_tile(T *dst, int ld, int rows, int cols, Get get) {
  batched<kTok * COLS>(
      [&](int i) {
        const int r = i / COLS, c = i % COLS;
        return r < rows && c < cols ? get(r, c) : 0.f;
      },
      [&](int i, float v) { dst[(i / COLS) * ld + i % COLS] = from_f32<T>(v); });
}

/**
 * bf16 inputs: the chunk-state product's x operand, x_t·exp(dA_last − dA_t)·dt_t, is an f32 value that a
 * single bf16 rounding would carry into the f32 state at ~2⁻⁹ (the final state then disagrees with an f32
 * recurrence at 2e-3 of its scale); it is split into two bf16 tiles (hi + lo) instead.
 */
template <typename T>
constexpr bool kSplitX = std::is_same_v<T, __nv_bfloat16>;

template <typename T, int PT, int NT>
__global__ void __launch_bounds__(kThreads) ssd_chunk_state(SsdParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int ldx = PT + 8, ldb = NT + 8, ldacc = NT + 4;
  const int cc = blockIdx.x, h = blockIdx.y, b = blockIdx.z, c = p.c0 + cc;
  const int t0 = c * p.Q, Lc = min(p.Q, p.L - t0), grp = h / (p.H / p.G);
  float *sdt = reinterpret_cast<float *>(smem);
  float *sdA = sdt + 256;
  T *sX = reinterpret_cast<T *>(smem + 2048);
  T *sB = reinterpret_cast<T *>(smem + 2048 + round128(sizeof(T) * kTok * ldx));
  float *sAcc = reinterpret_cast<float *>(smem + 2048 + round128(sizeof(T) * kTok * ldx) +
                                          round128(sizeof(T) * kTok * ldb));
  T *sXlo = kSplitX<T> ? reinterpret_cast<T *>(sAcc + PT * ldacc) : nullptr;
  const float Ah = p.A[h];
  for (int t = threadIdx.x; t < p.Q; t += kThreads) {
    const float d = t < Lc ? p.dt[(static_cast<size_t>(b) * p.L + t0 + t) * p.H + h] : 0.f;
    sdt[t] = d;
    sdA[t] = d * Ah;
  }
  for (int i = threadIdx.x; i < PT * ldacc; i += kThreads) sAcc[i] = 0.f;
  __syncthreads();
  if (threadIdx.x < 32) warp_scan_inplace(sdA, p.Q);
  __syncthreads();
  float *dAcs = p.dAcs + ((static_cast<size_t>(b) * p.H + h) * p.run + cc) * p.Q;
  for (int t = threadIdx.x; t < p.Q; t += kThreads) dAcs[t] = sdA[t];
  const float last = sdA[Lc - 1];

  const T *x = static_cast<const T *>(p.x) + (static_cast<size_t>(b) * p.L + t0) * p.H * p.P + h * p.P;
  const T *Bm = static_cast<const T *>(p.B) + (static_cast<size_t>(b) * p.L + t0) * p.G * p.N + grp * p.N;
  const size_t xs = static_cast<size_t>(p.H) * p.P, bs = static_cast<size_t>(p.G) * p.N;
  for (int tb = 0; tb < Lc; tb += kTok) {
    const int rows = min(kTok, Lc - tb);
    batched<kTok * PT>(
        [&](int i) {
          const int r = i / PT, q = i % PT, t = tb + r;
          return r < rows && q < p.P ? to_f32(__ldg(&x[t * xs + q])) * (__expf(fminf(last - sdA[t], 0.f)) * sdt[t])
                                     : 0.f;
        },
        [&](int i, float v) {
          const int at = (i / PT) * ldx + i % PT;
          const T hi = from_f32<T>(v);
          sX[at] = hi;
          if constexpr (kSplitX<T>) sXlo[at] = from_f32<T>(v - to_f32(hi));
        });
    fill_tile<T, NT>(sB, ldb, rows, p.N, [&](int r, int n) { return to_f32(__ldg(&Bm[(tb + r) * bs + n])); });
    __syncthreads();
    tile_mm<true, false>(sX, ldx, sB, ldb, sAcc, ldacc, PT, NT, kTok, sXlo);
    __syncthreads();
  }
  float *st = p.states + ((static_cast<size_t>(b) * p.run + cc) * p.H + h) * p.P * p.N;
  batched<PT * NT>([&](int i) { return sAcc[(i / NT) * ldacc + i % NT]; },
                   [&](int i, float v) {
                     if (i / NT < p.P && i % NT < p.N) st[(i / NT) * p.N + i % NT] = v;
                   });
}

/** CB[t, s] = C_t·B_s for one 64×64 block (s-block ≤ t-block) of one chunk and group: shared by its heads. */
template <typename T, int NT>
__global__ void __launch_bounds__(kThreads) ssd_bmm(SsdParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int ld = NT + 8, ldcb = kTok + 4;
  const int nTb = p.Q / kTok, pairs = nTb * (nTb + 1) / 2;
  const int cc = blockIdx.x / pairs, g = blockIdx.y, b = blockIdx.z;
  int pr = blockIdx.x % pairs, tb = 0;
  while (pr > tb) pr -= ++tb;  // pairs enumerate (tb, sb) with sb ≤ tb
  const int sb = pr;
  const int t0 = (p.c0 + cc) * p.Q, Lc = min(p.Q, p.L - t0);
  if (tb * kTok >= Lc) return;
  T *sC = reinterpret_cast<T *>(smem);
  T *sB = reinterpret_cast<T *>(smem + round128(sizeof(T) * kTok * ld));
  float *sCB = reinterpret_cast<float *>(smem + 2 * round128(sizeof(T) * kTok * ld));
  const size_t bs = static_cast<size_t>(p.G) * p.N;
  const T *Cm = static_cast<const T *>(p.C) + (static_cast<size_t>(b) * p.L + t0) * bs + g * p.N;
  const T *Bm = static_cast<const T *>(p.B) + (static_cast<size_t>(b) * p.L + t0) * bs + g * p.N;
  fill_tile<T, NT>(sC, ld, min(kTok, Lc - tb * kTok), p.N, [&](int r, int n) { return to_f32(__ldg(&Cm[(tb * kTok + r) * bs + n])); });
  fill_tile<T, NT>(sB, ld, min(kTok, Lc - sb * kTok), p.N, [&](int r, int n) { return to_f32(__ldg(&Bm[(sb * kTok + r) * bs + n])); });
  for (int i = threadIdx.x; i < kTok * ldcb; i += kThreads) sCB[i] = 0.f;
  __syncthreads();
  tile_mm<false, true>(sC, ld, sB, ld, sCB, ldcb, kTok, kTok, NT);
  __syncthreads();
  float *cb = p.cb + (((static_cast<size_t>(b) * p.run + cc) * p.G + g) * p.Q + tb * kTok) * p.Q + sb * kTok;
  batched<kTok * kTok>([&](int i) { return sCB[(i / kTok) * ldcb + i % kTok]; },
                       [&](int i, float v) { cb[(i / kTok) * p.Q + i % kTok] = v; });
}

__global__ void ssd_state_pass(SsdParams p) {
  const size_t e = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t per = static_cast<size_t>(p.P) * p.N;
  if (e >= static_cast<size_t>(p.batch) * p.H * per) return;
  const int h = static_cast<int>((e / per) % p.H), b = static_cast<int>(e / (per * p.H));
  const size_t inner = e % per;
  float s = p.init ? p.init[e] : 0.f;
  for (int cc = 0; cc < p.nc; ++cc) {
    float *st = p.states + ((static_cast<size_t>(b) * p.run + cc) * p.H + h) * per + inner;
    const float own = *st;
    *st = s;
    const int Lc = min(p.Q, p.L - (p.c0 + cc) * p.Q);
    const float last = p.dAcs[((static_cast<size_t>(b) * p.H + h) * p.run + cc) * p.Q + Lc - 1];
    s = __expf(last) * s + own;
  }
  p.fin[e] = s;
}

/**
 * Accumulator of a 64×PT output tile. bf16: WMMA fragments in registers, warp w owning rows 16w..16w+15;
 * f32: the shared tile `sY` itself (SIMT products).
 */
template <typename T, int PT>
struct TileAcc {
  float *sY;
  int ldy;
  __device__ void zero() {
    for (int i = threadIdx.x; i < kTok * ldy; i += kThreads) sY[i] = 0.f;
  }
  template <bool BCol, int K>
  __device__ void mma(const T *A, int lda, const T *B, int ldb) {
    tile_mm<false, BCol>(A, lda, B, ldb, sY, ldy, kTok, PT, K);
  }
  __device__ void finish() {}
};

template <int PT>
struct TileAcc<__nv_bfloat16, PT> {
  float *sY;
  int ldy;
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc[PT / 16];
  __device__ void zero() {
#pragma unroll
    for (int j = 0; j < PT / 16; ++j) nvcuda::wmma::fill_fragment(acc[j], 0.f);
  }
  // acc += A[rows of this warp, 0..K) · B[0..K, 0..PT)
  template <bool BCol, int K>
  __device__ void mma(const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *B, int ldb) {
    using namespace nvcuda;
    using LB = std::conditional_t<BCol, wmma::col_major, wmma::row_major>;
    const int m0 = (threadIdx.x >> 5) * 16;
#pragma unroll 4
    for (int k = 0; k < K; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
      wmma::load_matrix_sync(a, A + m0 * lda + k, lda);
#pragma unroll
      for (int j = 0; j < PT / 16; ++j) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LB> bf;
        wmma::load_matrix_sync(bf, BCol ? B + j * 16 * ldb + k : B + k * ldb + j * 16, ldb);
        wmma::mma_sync(acc[j], a, bf, acc[j]);
      }
    }
  }
  __device__ void finish() {
    const int m0 = (threadIdx.x >> 5) * 16;
#pragma unroll
    for (int j = 0; j < PT / 16; ++j)
      nvcuda::wmma::store_matrix_sync(sY + m0 * ldy + j * 16, acc[j], ldy, nvcuda::wmma::mem_row_major);
  }
};

template <typename T, int PT, int NT>
__global__ void __launch_bounds__(kThreads) ssd_chunk_scan(SsdParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int ldc = NT + 8, ldx = PT + 8, ldy = PT + 4, ldm = kTok + 8;
  const int nTb = p.Q / kTok;
  const int cc = blockIdx.x / nTb, tb = (blockIdx.x % nTb) * kTok, h = blockIdx.y, b = blockIdx.z;
  const int c = p.c0 + cc, t0 = c * p.Q, Lc = min(p.Q, p.L - t0), grp = h / (p.H / p.G);
  if (tb >= Lc) return;
  unsigned char *q = smem;
  float *sdt = reinterpret_cast<float *>(q);
  float *sdA = sdt + 256;
  q += 2048;
  T *sC = reinterpret_cast<T *>(q);
  q += round128(sizeof(T) * kTok * ldc);
  T *sS = reinterpret_cast<T *>(q);
  q += round128(sizeof(T) * PT * ldc);
  T *sM = reinterpret_cast<T *>(q);
  q += round128(sizeof(T) * kTok * ldm);
  T *sX = reinterpret_cast<T *>(q);
  q += round128(sizeof(T) * kTok * ldx);
  float *sY = reinterpret_cast<float *>(q);

  const size_t xs = static_cast<size_t>(p.H) * p.P, bs = static_cast<size_t>(p.G) * p.N;
  const T *x = static_cast<const T *>(p.x) + (static_cast<size_t>(b) * p.L + t0) * xs + h * p.P;
  const T *Cm = static_cast<const T *>(p.C) + (static_cast<size_t>(b) * p.L + t0) * bs + grp * p.N;
  const float *dAcs = p.dAcs + ((static_cast<size_t>(b) * p.H + h) * p.run + cc) * p.Q;
  for (int t = threadIdx.x; t < p.Q; t += kThreads) {
    sdA[t] = dAcs[t];
    sdt[t] = t < Lc ? p.dt[(static_cast<size_t>(b) * p.L + t0 + t) * p.H + h] : 0.f;
  }
  __syncthreads();
  const int rows = min(kTok, Lc - tb);
  // The state entering the chunk reaches token t decayed by exp(dA_t): fold that into C's rows.
  fill_tile<T, NT>(sC, ldc, rows, p.N, [&](int r, int n) { return to_f32(__ldg(&Cm[(tb + r) * bs + n])) * __expf(sdA[tb + r]); });
  const float *st = p.states + ((static_cast<size_t>(b) * p.run + cc) * p.H + h) * p.P * p.N;
  batched<PT * NT>(
      [&](int i) {
        const int r = i / NT, n = i % NT;
        return r < p.P && n < p.N ? __ldg(&st[r * p.N + n]) : 0.f;
      },
      [&](int i, float v) { sS[(i / NT) * ldc + i % NT] = from_f32<T>(v); });
  TileAcc<T, PT> acc{sY, ldy};
  acc.zero();
  __syncthreads();
  acc.template mma<true, NT>(sC, ldc, sS, ldc);  // (C·exp(dA))·Sᵀ
  const float *cb = p.cb + (((static_cast<size_t>(b) * p.run + cc) * p.G + grp) * p.Q + tb) * p.Q;
  for (int sb = 0; sb <= tb; sb += kTok) {
    __syncthreads();  // previous products are done with sM / sX
    fill_tile<T, PT>(sX, ldx, min(kTok, Lc - sb), p.P, [&](int r, int pp) { return to_f32(__ldg(&x[(sb + r) * xs + pp])); });
    batched<kTok * kTok>(
        [&](int i) {
          const int r = i / kTok, t = tb + r, s = sb + i % kTok;
          return s <= t && t < Lc ? __ldg(&cb[r * p.Q + s]) * __expf(fminf(sdA[t] - sdA[s], 0.f)) * sdt[s] : 0.f;
        },
        [&](int i, float v) { sM[(i / kTok) * ldm + i % kTok] = from_f32<T>(v); });
    __syncthreads();
    acc.template mma<false, kTok>(sM, ldm, sX, ldx);
  }
  acc.finish();
  __syncthreads();
  const float Dh = p.D ? load_param(p.D, p.dDt, h) : 0.f;
  T *y = static_cast<T *>(p.y) + (static_cast<size_t>(b) * p.L + t0) * xs + h * p.P;
  batched<kTok * PT>(
      [&](int i) {
        const int r = i / PT, pp = i % PT, t = tb + r;
        return t < Lc && pp < p.P ? sY[r * ldy + pp] + Dh * to_f32(__ldg(&x[t * xs + pp])) : 0.f;
      },
      [&](int i, float v) {
        const int r = i / PT, pp = i % PT, t = tb + r;
        if (t < Lc && pp < p.P) store_f32(y, t * xs + pp, v);
      });
}

template <typename T>
__global__ void ssm_step_kernel(SsdParams p) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const size_t row = static_cast<size_t>(blockIdx.x) * (blockDim.x >> 5) + warp;  // (b, h, p)
  if (row >= static_cast<size_t>(p.batch) * p.H * p.P) return;
  const int h = static_cast<int>((row / p.P) % p.H), b = static_cast<int>(row / (static_cast<size_t>(p.P) * p.H));
  const int grp = h / (p.H / p.G);
  const float d = p.dt[static_cast<size_t>(b) * p.H + h];
  const float decay = __expf(d * p.A[h]);
  const float xv = to_f32(static_cast<const T *>(p.x)[row]);
  const T *Bv = static_cast<const T *>(p.B) + (static_cast<size_t>(b) * p.G + grp) * p.N;
  const T *Cv = static_cast<const T *>(p.C) + (static_cast<size_t>(b) * p.G + grp) * p.N;
  float *s = p.fin + row * p.N;
  float acc = 0.f;
  for (int n = lane; n < p.N; n += 32) {
    const float v = s[n] * decay + d * xv * to_f32(Bv[n]);
    s[n] = v;
    acc += v * to_f32(Cv[n]);
  }
  for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) {
    const float Dh = p.D ? load_param(p.D, p.dDt, h) : 0.f;
    store_f32(static_cast<T *>(p.y), row, acc + Dh * xv);
  }
}

struct SsdPlan {
  int Q, nChunks, run;
  size_t dAcsBytes, statesBytes, cbBytes, carryBytes;
  size_t total() const { return dAcsBytes + statesBytes + cbBytes + carryBytes; }
};

SsdPlan make_plan(const SsdDims &d, bool needCarry, size_t budget) {
  SsdPlan p{};
  p.Q = std::clamp((d.chunkSize + 32) / 64 * 64, 64, 256);
  p.nChunks = ceil_div(d.len, p.Q);
  const size_t B = d.batch, H = d.heads, PN = static_cast<size_t>(d.headDim) * d.dState, Q = p.Q;
  const size_t perChunk = sizeof(float) * B * (H * (PN + Q) + d.groups * Q * Q);
  p.carryBytes = needCarry ? align256(sizeof(float) * B * H * PN) : 0;
  const size_t room = budget > p.carryBytes + 768 ? budget - p.carryBytes - 768 : 0;
  p.run = static_cast<int>(std::max<size_t>(1, std::min<size_t>(p.nChunks, room / perChunk)));
  p.dAcsBytes = align256(sizeof(float) * B * H * p.run * Q);
  p.statesBytes = align256(sizeof(float) * B * p.run * H * PN);
  p.cbBytes = align256(sizeof(float) * B * p.run * d.groups * Q * Q);
  return p;
}

template <typename T, int PT, int NT>
constexpr size_t state_smem() {
  return 2048 + round128(sizeof(T) * kTok * (PT + 8)) * (kSplitX<T> ? 2 : 1) + round128(sizeof(T) * kTok * (NT + 8)) +
         round128(sizeof(float) * PT * (NT + 4));
}
template <typename T, int NT>
constexpr size_t bmm_smem() {
  return 2 * round128(sizeof(T) * kTok * (NT + 8)) + round128(sizeof(float) * kTok * (kTok + 4));
}
template <typename T, int PT, int NT>
constexpr size_t scan_smem() {
  return 2048 + round128(sizeof(T) * kTok * (NT + 8)) + round128(sizeof(T) * PT * (NT + 8)) +
         round128(sizeof(T) * kTok * (kTok + 8)) + round128(sizeof(T) * kTok * (PT + 8)) +
         round128(sizeof(float) * kTok * (PT + 4));
}

template <typename T, int PT, int NT>
void launch_scan(SsdParams p, const SsdPlan &plan, const float *stateIn, cudaStream_t stream) {
  constexpr size_t s1 = state_smem<T, PT, NT>(), s2 = bmm_smem<T, NT>(), s3 = scan_smem<T, PT, NT>();
  if constexpr (std::max({s1, s2, s3}) > 227 * 1024) {
    throw std::invalid_argument("ssd_scan: headDim/dState too large for shared memory in f32; use bf16");
  } else {
  allow_smem_once<ssd_chunk_state<T, PT, NT>>(s1);
  allow_smem_once<ssd_bmm<T, NT>>(s2);
  allow_smem_once<ssd_chunk_scan<T, PT, NT>>(s3);
  const int nTb = p.Q / kTok;
  const size_t stateElems = static_cast<size_t>(p.batch) * p.H * p.P * p.N;
  for (int c0 = 0; c0 < plan.nChunks; c0 += plan.run) {
    p.c0 = c0;
    p.nc = std::min(plan.run, plan.nChunks - c0);
    p.init = c0 == 0 ? stateIn : p.fin;
    ssd_chunk_state<T, PT, NT><<<dim3(p.nc, p.H, p.batch), kThreads, s1, stream>>>(p);
    LS_CHECK_LAUNCH();
    ssd_bmm<T, NT><<<dim3(p.nc * nTb * (nTb + 1) / 2, p.G, p.batch), kThreads, s2, stream>>>(p);
    LS_CHECK_LAUNCH();
    ssd_state_pass<<<static_cast<unsigned>(ceil_div<size_t>(stateElems, 256)), 256, 0, stream>>>(p);
    LS_CHECK_LAUNCH();
    ssd_chunk_scan<T, PT, NT><<<dim3(p.nc * nTb, p.H, p.batch), kThreads, s3, stream>>>(p);
    LS_CHECK_LAUNCH();
  }
  }
}

template <typename T>
void dispatch_dims(const SsdParams &p, const SsdPlan &plan, const float *stateIn, cudaStream_t stream) {
  const bool smallP = p.P <= 64;
  if (p.N <= 64) smallP ? launch_scan<T, 64, 64>(p, plan, stateIn, stream) : launch_scan<T, 128, 64>(p, plan, stateIn, stream);
  else if (p.N <= 128) smallP ? launch_scan<T, 64, 128>(p, plan, stateIn, stream) : launch_scan<T, 128, 128>(p, plan, stateIn, stream);
  else smallP ? launch_scan<T, 64, 256>(p, plan, stateIn, stream) : launch_scan<T, 128, 256>(p, plan, stateIn, stream);
}

void check_dims(const SsdDims &d) {
  LS_REQUIRE(d.groups > 0 && d.heads % d.groups == 0, "ssd: heads must be a multiple of groups");
  LS_REQUIRE(d.headDim > 0 && d.headDim <= 128, "ssd: headDim must be in [1, 128]");
  LS_REQUIRE(d.dState > 0 && d.dState <= 256, "ssd: dState must be in [1, 256]");
}

}  // namespace

size_t ssd_scan_workspace_bytes(const SsdDims &d, DT) {
  // The carry buffer is always counted so that a null stateOut never needs more than this.
  const SsdPlan p = make_plan(d, true, kRunBudget);
  return p.total();
}

void ssd_scan(void *y, float *stateOut, const void *x, const float *dt, const float *A, const void *B,
              const void *C, const void *D, DT dDt, const float *stateIn, const SsdDims &d, DT dtype,
              void *workspace, size_t workspaceBytes, cudaStream_t stream) {
  check_dims(d);
  const size_t stateElems = static_cast<size_t>(d.batch) * d.heads * d.headDim * d.dState;
  if (d.len == 0 || d.batch == 0) {
    if (stateOut && stateIn) LS_CUDA_CHECK(cudaMemcpyAsync(stateOut, stateIn, stateElems * 4, cudaMemcpyDeviceToDevice, stream));
    else if (stateOut) LS_CUDA_CHECK(cudaMemsetAsync(stateOut, 0, stateElems * 4, stream));
    return;
  }
  // A smaller workspace than preferred only shortens the runs of chunks (down to one chunk per run).
  const SsdPlan plan = make_plan(d, stateOut == nullptr, std::min(workspaceBytes, kRunBudget));
  LS_REQUIRE(workspaceBytes >= plan.total(),
             "ssd_scan: workspace smaller than ssd_scan_workspace_bytes()");
  unsigned char *ws = static_cast<unsigned char *>(workspace);
  SsdParams p{};
  p.x = x;
  p.B = B;
  p.C = C;
  p.D = D;
  p.dDt = dDt;
  p.y = y;
  p.dt = dt;
  p.A = A;
  p.dAcs = reinterpret_cast<float *>(ws);
  p.states = reinterpret_cast<float *>(ws + plan.dAcsBytes);
  p.cb = reinterpret_cast<float *>(ws + plan.dAcsBytes + plan.statesBytes);
  p.fin = stateOut ? stateOut : reinterpret_cast<float *>(ws + plan.dAcsBytes + plan.statesBytes + plan.cbBytes);
  p.batch = d.batch;
  p.L = d.len;
  p.H = d.heads;
  p.P = d.headDim;
  p.G = d.groups;
  p.N = d.dState;
  p.Q = plan.Q;
  p.run = plan.run;
  LS_DISPATCH_DT(dtype, T, { dispatch_dims<T>(p, plan, stateIn, stream); });
}

void ssm_step(void *y, float *state, const void *x, const float *dt, const float *A, const void *B, const void *C,
              const void *D, DT dDt, const SsdDims &d, DT dtype, cudaStream_t stream) {
  check_dims(d);
  LS_REQUIRE(d.len == 1, "ssm_step: dims.len must be 1");
  SsdParams p{};
  p.x = x;
  p.B = B;
  p.C = C;
  p.D = D;
  p.dDt = dDt;
  p.y = y;
  p.dt = dt;
  p.A = A;
  p.fin = state;
  p.batch = d.batch;
  p.H = d.heads;
  p.P = d.headDim;
  p.G = d.groups;
  p.N = d.dState;
  const size_t rows = static_cast<size_t>(d.batch) * d.heads * d.headDim;
  if (rows == 0) return;
  LS_DISPATCH_DT(dtype, T, {
    ssm_step_kernel<T><<<static_cast<unsigned>(ceil_div<size_t>(rows, 8)), 256, 0, stream>>>(p);
    LS_CHECK_LAUNCH();
  });
}
