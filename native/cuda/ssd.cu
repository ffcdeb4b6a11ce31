// Mamba-2 SSD, following mamba_ssm's chunked algorithm (research/engines.md §4), in four kernels per run of
// chunks:
//   1. ssd_chunk_state: per (head, chunk) the inclusive cumsum of dt·A inside the chunk (f32, kept in the
//      workspace) and the chunk's own final state from a zero start, Σ_t exp(dA_last − dA_t)·dt_t·x_tᵀB_t (f32).
//   2. ssd_bmm: per (chunk, group) CB = C·Bᵀ for the 64×64 blocks on or below the diagonal (f32, shared by
//      the group's heads).
//   3. ssd_state_pass: sequential over chunks, turns the own states into the state at the start of each chunk
//      (stored in the input dtype: it is an MMA operand of the next kernel) and carries the f32 running state
//      to the next run of chunks / the final state.
//   4. ssd_chunk_scan: per (head, chunk, 64-token block) y = exp(dA_t)·C_t·S_start
//      + Σ_{s≤t} (C_t·B_s)·exp(dA_t − dA_s)·dt_s·x_s + D·x_t.
// Tiles move global → shared with 16-byte cp.async (or 16-byte loads when they must be transformed); bf16
// products run on mma.sync m16n8k16 with ldmatrix fragments and f32 accumulators in registers; f32 inputs take
// the same kernels with a CUDA-core product of the same fragment layout. Everything but the MMA operands is f32.
// The chunk-state product's f32 operand is split into two bf16 parts, so the carried state is as precise as an
// f32 recurrence over the bf16 inputs (y keeps the bf16 rounding of its operands, as mamba_ssm's kernels do).
// Runs of chunks bound the workspace at long lengths.
#include "ssd.h"

#include <algorithm>
#include <type_traits>

#include "device_util.cuh"
#include "mma_util.cuh"

namespace {

constexpr int kTok = 64;  // tokens per tile
constexpr size_t kRunBudget = size_t(256) << 20;

/** Elements per 16-byte access; also the row padding of shared tiles (keeps ldmatrix rows on distinct banks). */
template <typename T>
constexpr int kE = 16 / static_cast<int>(sizeof(T));

__host__ __device__ constexpr size_t round128(size_t n) { return (n + 127) & ~size_t(127); }

__device__ __forceinline__ float load_param(const void *p, DT t, int i) {
  return t == DT::F32 ? static_cast<const float *>(p)[i] : __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
}

struct SsdParams {
  const void *x, *B, *C, *D;
  DT dDt;
  void *y;
  const float *dt, *A;
  float *dAcs;    // [batch, heads, run, Q]
  float *states;  // [batch, run, heads, P, N] f32: each chunk's own final state
  void *start;    // [batch, run, heads, P, N] in the input dtype: the state entering each chunk
  float *cb;      // [batch, run, groups, Q, Q] (only the s ≤ t blocks are written)
  const float *init;
  float *fin;
  int batch, L, H, P, G, N, Q, run, c0, nc;
  bool vec;  // x, B, C, y rows can move in 16-byte pieces (aligned pointers, P and N multiples of kE)
};

/**
 * acc[j] += A·B over one warp's 16×(8·NJ) output tile: A is 16×K, B is K×(8·NJ), both in shared memory.
 * A is stored [m][k] (row-major) or, when AKM, [k][m]; B is stored [k][n] or, when BNK, [n][k]. The layout of
 * `acc` is the m16n8 accumulator fragment: this lane owns rows lane/4 and lane/4 + 8, columns 2·(lane%4) + {0, 1}
 * of each 8-column tile j. bf16: ldmatrix (.trans where the stored layout is the fragment's transpose) + mma.sync.
 */
template <bool AKM, bool BNK, int NJ>
__device__ __forceinline__ void warp_mm(float (&acc)[NJ][4], const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *B,
                                        int ldb, int K) {
  static_assert(NJ % 2 == 0, "pairs of 8-column tiles");
  const int lane = threadIdx.x & 31, r8 = lane & 7, mi = lane >> 3;
#pragma unroll 2
  for (int k0 = 0; k0 < K; k0 += 16) {
    // Fragment registers a0..a3 = (rows 0–7, k 0–7), (rows 8–15, k 0–7), (rows 0–7, k 8–15), (rows 8–15, k 8–15);
    // lanes 8·mi..8·mi+7 address the stored rows of 8×8 matrix mi.
    uint32_t a[4];
    if constexpr (AKM) ldmatrix_x4_trans(a, A + (k0 + (mi >> 1) * 8 + r8) * lda + (mi & 1) * 8);
    else ldmatrix_x4(a, A + ((mi & 1) * 8 + r8) * lda + k0 + (mi >> 1) * 8);
#pragma unroll
    for (int j = 0; j < NJ; j += 2) {
      // b0..b3 = (k 0–7, tile j), (k 8–15, tile j), (k 0–7, tile j+1), (k 8–15, tile j+1).
      uint32_t b[4];
      if constexpr (BNK) ldmatrix_x4(b, B + ((j + (mi >> 1)) * 8 + r8) * ldb + k0 + (mi & 1) * 8);
      else ldmatrix_x4_trans(b, B + (k0 + (mi & 1) * 8 + r8) * ldb + (j + (mi >> 1)) * 8);
      mma_bf16_16816(acc[j], a, b[0], b[1]);
      mma_bf16_16816(acc[j + 1], a, b[2], b[3]);
    }
  }
}

/** f32 operands: the same tile and fragment layout computed with CUDA-core FMAs (the f32 parity path). */
template <bool AKM, bool BNK, int NJ>
__device__ __forceinline__ void warp_mm(float (&acc)[NJ][4], const float *A, int lda, const float *B, int ldb,
                                        int K) {
  const int lane = threadIdx.x & 31, r = lane >> 2, c = 2 * (lane & 3);
  auto a_at = [&](int m, int k) { return AKM ? A[k * lda + m] : A[m * lda + k]; };
  auto b_at = [&](int k, int n) { return BNK ? B[n * ldb + k] : B[k * ldb + n]; };
  for (int k = 0; k < K; ++k) {
    const float a0 = a_at(r, k), a1 = a_at(r + 8, k);
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const float b0 = b_at(k, 8 * j + c), b1 = b_at(k, 8 * j + c + 1);
      acc[j][0] += a0 * b0;
      acc[j][1] += a0 * b1;
      acc[j][2] += a1 * b0;
      acc[j][3] += a1 * b1;
    }
  }
}

/**
 * dst[ROWS×COLS] (row stride ldd) ← src rows (stride lds), zero outside r < rows, c < cols. With p.vec the rows
 * move as 16-byte cp.async pieces (the caller commits and waits), otherwise element by element.
 */
template <typename T, int ROWS, int COLS>
__device__ __forceinline__ void load_tile(T *dst, int ldd, const T *src, size_t lds, int rows, int cols, bool vec) {
  constexpr int E = kE<T>, CPR = COLS / E;
  for (int i = threadIdx.x; i < ROWS * CPR; i += blockDim.x) {
    const int r = i / CPR, c = (i % CPR) * E;
    T *d = dst + r * ldd + c;
    if (vec) {
      const bool ok = r < rows && c < cols;
      cp_async16(d, ok ? src + r * lds + c : src, ok ? 16 : 0);
    } else {
#pragma unroll
      for (int e = 0; e < E; ++e) d[e] = from_f32<T>(r < rows && c + e < cols ? to_f32(src[r * lds + c + e]) : 0.f);
    }
  }
}

/** The E = kE<T> values src[c, c+E) of one row, raw (zeros where c + e ≥ cols or !ok). */
template <typename T>
__device__ __forceinline__ Pack<T, kE<T>> load_piece(const T *src, int c, int cols, bool ok, bool vec) {
  constexpr int E = kE<T>;
  Pack<T, E> a;
  if (ok && vec) {
    a = *reinterpret_cast<const Pack<T, E> *>(src + c);
  } else {
#pragma unroll
    for (int e = 0; e < E; ++e) a.v[e] = ok && c + e < cols ? src[c + e] : from_f32<T>(0.f);
  }
  return a;
}

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
 * bf16 inputs: the chunk-state product's x operand, x_t·exp(dA_last − dA_t)·dt_t, is an f32 value that a
 * single bf16 rounding would carry into the f32 state at ~2⁻⁹ (the final state then disagrees with an f32
 * recurrence at 2e-3 of its scale); it is split into two bf16 tiles (hi + lo) whose products both accumulate,
 * bringing the operand to ~2⁻¹⁶ for the price of a second MMA.
 */
template <typename T>
constexpr bool kSplitX = std::is_same_v<T, __nv_bfloat16>;

constexpr int kStateThreads = 256;

template <typename T, int PT, int NT>
constexpr size_t state_smem() {
  return 2048 + round128(sizeof(T) * kTok * (PT + kE<T>)) * (kSplitX<T> ? 2 : 1) +
         2 * round128(sizeof(T) * kTok * (NT + kE<T>));
}

/**
 * One CTA per (head, chunk): 8 warps tile the PT×NT state (a 16-row strip and a column range each) and walk the
 * chunk 64 tokens at a time: B by cp.async, x scaled by its decay weight (and split) through registers.
 */
template <typename T, int PT, int NT>
__global__ void __launch_bounds__(kStateThreads) ssd_chunk_state(SsdParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int E = kE<T>, ldx = PT + E, ldb = NT + E;
  constexpr int strips = PT / 16, warpsPerStrip = (kStateThreads / 32) / strips, WN = NT / warpsPerStrip;
  const int h = blockIdx.x, cc = blockIdx.y, b = blockIdx.z, c = p.c0 + cc;
  const int t0 = c * p.Q, Lc = min(p.Q, p.L - t0), grp = h / (p.H / p.G);
  float *sdA = reinterpret_cast<float *>(smem);
  float *sw = sdA + 256;
  T *sX = reinterpret_cast<T *>(smem + 2048);
  T *sXlo = sX + (kSplitX<T> ? round128(sizeof(T) * kTok * ldx) / sizeof(T) : 0);
  T *sB = sXlo + round128(sizeof(T) * kTok * ldx) / sizeof(T);  // two buffers
  constexpr size_t bBuf = round128(sizeof(T) * kTok * ldb) / sizeof(T);
  const int t = threadIdx.x;  // Q ≤ 256 = blockDim: one token each
  const float d = t < Lc ? p.dt[(static_cast<size_t>(b) * p.L + t0 + t) * p.H + h] : 0.f;
  if (t < p.Q) sdA[t] = d * p.A[h];
  __syncthreads();
  if (t < 32) warp_scan_inplace(sdA, p.Q);
  __syncthreads();
  if (t < p.Q) {
    p.dAcs[((static_cast<size_t>(b) * p.H + h) * p.run + cc) * p.Q + t] = sdA[t];
    sw[t] = __expf(fminf(sdA[Lc - 1] - sdA[t], 0.f)) * d;  // token t's weight in the chunk's final state
  }
  __syncthreads();

  const size_t xs = static_cast<size_t>(p.H) * p.P, bs = static_cast<size_t>(p.G) * p.N;
  const T *x = static_cast<const T *>(p.x) + (static_cast<size_t>(b) * p.L + t0) * xs + h * p.P;
  const T *Bm = static_cast<const T *>(p.B) + (static_cast<size_t>(b) * p.L + t0) * bs + grp * p.N;
  const int warp = threadIdx.x >> 5, m0 = (warp % strips) * 16, n0 = (warp / strips) * WN;
  float acc[WN / 8][4] = {};
  // Software pipeline over the token blocks: the next block's B (cp.async, second buffer) and x pieces (raw, in
  // registers) are in flight while the current block's products run.
  constexpr int CPR = PT / E, XP = kTok * CPR / kStateThreads;
  static_assert(XP * kStateThreads == kTok * CPR, "x pieces per thread");
  Pack<T, E> xr[XP];
  auto fetch = [&](int tb) {
    const int rows = min(kTok, Lc - tb);
    load_tile<T, kTok, NT>(sB + ((tb / kTok) & 1) * bBuf, ldb, Bm + tb * bs, bs, rows, p.N, p.vec);
    cp_async_commit();
#pragma unroll
    for (int u = 0; u < XP; ++u) {
      const int i = threadIdx.x + u * kStateThreads, r = i / CPR;
      xr[u] = load_piece<T>(x + (tb + r) * xs, (i % CPR) * E, p.P, r < rows, p.vec);
    }
  };
  fetch(0);
  for (int tb = 0; tb < Lc; tb += kTok) {
#pragma unroll
    for (int u = 0; u < XP; ++u) {
      const int i = threadIdx.x + u * kStateThreads, r = i / CPR, col = (i % CPR) * E;
      const float w = sw[tb + r];
      Pack<T, E> hi, lo;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        const float v = to_f32(xr[u].v[e]) * w;
        hi.v[e] = from_f32<T>(v);
        if constexpr (kSplitX<T>) lo.v[e] = from_f32<T>(v - to_f32(hi.v[e]));
      }
      *reinterpret_cast<Pack<T, E> *>(sX + r * ldx + col) = hi;
      if constexpr (kSplitX<T>) *reinterpret_cast<Pack<T, E> *>(sXlo + r * ldx + col) = lo;
    }
    if (tb + kTok < Lc) {
      fetch(tb + kTok);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    // state[p][n] += Σ_t X[t][p]·B[t][n]: A = Xᵀ, stored [k = t][m = p].
    const T *sBt = sB + ((tb / kTok) & 1) * bBuf + n0;
    warp_mm<true, false>(acc, sX + m0, ldx, sBt, ldb, kTok);
    if constexpr (kSplitX<T>) warp_mm<true, false>(acc, sXlo + m0, ldx, sBt, ldb, kTok);
    __syncthreads();
  }
  float *st = p.states + ((static_cast<size_t>(b) * p.run + cc) * p.H + h) * p.P * p.N;
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int j = 0; j < WN / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int m = m0 + lane / 4 + (e >> 1) * 8, n = n0 + 8 * j + 2 * (lane & 3) + (e & 1);
      if (m < p.P && n < p.N) st[m * p.N + n] = acc[j][e];
    }
}

template <typename T, int NT>
constexpr size_t bmm_smem() {
  return 2 * round128(sizeof(T) * kTok * (NT + kE<T>));
}

/** CB[t, s] = C_t·B_s for one 64×64 block (s-block ≤ t-block) of one chunk and group: shared by its heads. */
template <typename T, int NT>
__global__ void __launch_bounds__(128) ssd_bmm(SsdParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int ld = NT + kE<T>;
  int pr = blockIdx.x, tb = 0;
  while (pr > tb) pr -= ++tb;  // blockIdx.x enumerates (tb, sb) with sb ≤ tb
  const int sb = pr, cc = blockIdx.y, b = blockIdx.z / p.G, g = blockIdx.z % p.G;
  const int t0 = (p.c0 + cc) * p.Q, Lc = min(p.Q, p.L - t0);
  if (tb * kTok >= Lc) return;
  T *sC = reinterpret_cast<T *>(smem);
  T *sB = sC + round128(sizeof(T) * kTok * ld) / sizeof(T);
  const size_t bs = static_cast<size_t>(p.G) * p.N;
  const T *Cm = static_cast<const T *>(p.C) + (static_cast<size_t>(b) * p.L + t0) * bs + g * p.N;
  const T *Bm = static_cast<const T *>(p.B) + (static_cast<size_t>(b) * p.L + t0) * bs + g * p.N;
  load_tile<T, kTok, NT>(sC, ld, Cm + tb * kTok * bs, bs, min(kTok, Lc - tb * kTok), p.N, p.vec);
  load_tile<T, kTok, NT>(sB, ld, Bm + sb * kTok * bs, bs, min(kTok, Lc - sb * kTok), p.N, p.vec);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float acc[kTok / 8][4] = {};
  warp_mm<false, true>(acc, sC + warp * 16 * ld, ld, sB, ld, NT);  // B(k = n, s) = B_s[n], stored [s][n]
  float *cb = p.cb + (((static_cast<size_t>(b) * p.run + cc) * p.G + g) * p.Q + tb * kTok) * p.Q + sb * kTok;
#pragma unroll
  for (int j = 0; j < kTok / 8; ++j)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = warp * 16 + lane / 4 + half * 8, s = 8 * j + 2 * (lane & 3);
      *reinterpret_cast<float2 *>(cb + r * p.Q + s) = make_float2(acc[j][2 * half], acc[j][2 * half + 1]);
    }
}

/**
 * One thread per V consecutive state elements of one (batch, head), walking the run's chunks in order:
 * start[c] = S, S ← exp(dA_last(c))·S + own[c]. The next chunk's own state is loaded before the current one is
 * folded in, so each thread keeps a load in flight across the dependent chain.
 */
template <typename T, int V>
__global__ void ssd_state_pass(SsdParams p) {
  const size_t per = static_cast<size_t>(p.P) * p.N;
  const size_t e = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (e >= static_cast<size_t>(p.batch) * p.H * per) return;
  const int h = static_cast<int>((e / per) % p.H), b = static_cast<int>(e / (per * p.H));
  const size_t chunkStride = static_cast<size_t>(p.H) * per;
  const size_t off0 = (static_cast<size_t>(b) * p.run * p.H + h) * per + e % per;
  const float *dAcs = p.dAcs + (static_cast<size_t>(b) * p.H + h) * p.run * p.Q;
  float s[V], own[V];
#pragma unroll
  for (int k = 0; k < V; ++k) s[k] = p.init ? p.init[e + k] : 0.f;
  load_pack<float, V>(p.states, off0, own);
  for (int cc = 0; cc < p.nc; ++cc) {
    float cur[V];
#pragma unroll
    for (int k = 0; k < V; ++k) cur[k] = own[k];
    const int Lc = min(p.Q, p.L - (p.c0 + cc) * p.Q);
    const float decay = __expf(dAcs[cc * p.Q + Lc - 1]);
    if (cc + 1 < p.nc) load_pack<float, V>(p.states, off0 + (cc + 1) * chunkStride, own);
    store_pack<T, V>(static_cast<T *>(p.start), off0 + cc * chunkStride, s);
#pragma unroll
    for (int k = 0; k < V; ++k) s[k] = decay * s[k] + cur[k];
  }
  store_pack<float, V>(p.fin, e, s);
}

template <typename T, int PT, int NT>
constexpr size_t scan_smem() {
  constexpr int E = kE<T>;
  return 2048 + round128(sizeof(T) * kTok * (NT + E)) + round128(sizeof(T) * PT * (NT + E)) +
         2 * round128(sizeof(T) * kTok * (PT + E));
}

/**
 * One CTA (4 warps, 16 output rows each) per (head, chunk, 64-token block tb). The accumulator starts as
 * C·S_startᵀ, is scaled row-wise by exp(dA_t) (exact in f32, so C needs no rescaled copy), then gathers the
 * intra-chunk terms block by block: each warp builds its 16 rows of M[t][s] = CB[t][s]·exp(dA_t − dA_s)·dt_s
 * (s ≤ t) from the f32 CB in L2 while the next x block streams in by cp.async (double buffer).
 */
template <typename T, int PT, int NT>
__global__ void __launch_bounds__(128) ssd_chunk_scan(SsdParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int E = kE<T>, ldc = NT + E, ldx = PT + E, ldm = kTok + E, ldy = PT + E;
  const int nTb = p.Q / kTok;
  const int h = blockIdx.x, cc = blockIdx.y / nTb, b = blockIdx.z;
  const int tbI = nTb - 1 - static_cast<int>(blockIdx.y % nTb), tb = tbI * kTok;  // longest blocks first
  const int c = p.c0 + cc, t0 = c * p.Q, Lc = min(p.Q, p.L - t0), grp = h / (p.H / p.G);
  if (tb >= Lc) return;
  float *sdA = reinterpret_cast<float *>(smem);
  float *sdt = sdA + 256;
  T *sC = reinterpret_cast<T *>(smem + 2048);
  T *sS = sC + round128(sizeof(T) * kTok * ldc) / sizeof(T);
  T *sX = sS + round128(sizeof(T) * PT * ldc) / sizeof(T);  // two buffers
  constexpr size_t xBuf = round128(sizeof(T) * kTok * ldx) / sizeof(T);
  // C and the state are only read by the first product: afterwards M reuses C's tile and the output tile the
  // state's, which keeps the CTA at ~55 KB (four per SM for bf16 64×128).
  T *sM = sC;
  T *sY = sS;
  static_assert(kTok * (kTok + E) <= kTok * (NT + E) && kTok * (PT + E) <= PT * (NT + E), "tile reuse");

  const size_t xs = static_cast<size_t>(p.H) * p.P, bs = static_cast<size_t>(p.G) * p.N;
  const T *x = static_cast<const T *>(p.x) + (static_cast<size_t>(b) * p.L + t0) * xs + h * p.P;
  const T *Cm = static_cast<const T *>(p.C) + (static_cast<size_t>(b) * p.L + t0) * bs + grp * p.N;
  const size_t chunkHead = (static_cast<size_t>(b) * p.run + cc) * p.H + h;
  load_tile<T, kTok, NT>(sC, ldc, Cm + tb * bs, bs, min(kTok, Lc - tb), p.N, p.vec);
  load_tile<T, PT, NT>(sS, ldc, static_cast<const T *>(p.start) + chunkHead * p.P * p.N, p.N, p.P, p.N, p.vec);
  load_tile<T, kTok, PT>(sX, ldx, x, xs, min(kTok, Lc), p.P, p.vec);
  cp_async_commit();
  const float *dAcs = p.dAcs + ((static_cast<size_t>(b) * p.H + h) * p.run + cc) * p.Q;
  for (int t = threadIdx.x; t < p.Q; t += blockDim.x) {
    sdA[t] = dAcs[t];
    sdt[t] = t < Lc ? p.dt[(static_cast<size_t>(b) * p.L + t0 + t) * p.H + h] : 0.f;
  }
  cp_async_wait<0>();
  __syncthreads();

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int rA = tb + warp * 16 + lane / 4, rB = rA + 8;  // this lane's two accumulator rows (chunk positions)
  float acc[PT / 8][4] = {};
  warp_mm<false, true>(acc, sC + warp * 16 * ldc, ldc, sS, ldc, NT);  // S(k = n, p) = S_start[p][n], stored [p][n]
  {
    const float eA = __expf(sdA[rA]), eB = __expf(sdA[rB]);
#pragma unroll
    for (int j = 0; j < PT / 8; ++j) {
      acc[j][0] *= eA;
      acc[j][1] *= eA;
      acc[j][2] *= eB;
      acc[j][3] *= eB;
    }
  }
  __syncthreads();  // every warp is done with sC before M overwrites it
  const float *cb = p.cb + ((static_cast<size_t>(b) * p.run + cc) * p.G + grp) * p.Q * p.Q;
  T *myM = sM + warp * 16 * ldm;
  for (int sbI = 0; sbI <= tbI; ++sbI) {
    const int sb = sbI * kTok;
    if (sbI < tbI) {
      load_tile<T, kTok, PT>(sX + ((sbI + 1) & 1) * xBuf, ldx, x + (sb + kTok) * xs, xs, min(kTok, Lc - sb - kTok),
                             p.P, p.vec);
      cp_async_commit();
    }
    // This warp's 16 rows of M: lane covers 4 consecutive s of one row per step (16-byte CB loads, all 8 in flight).
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int i = lane + 32 * u, r = i / 16, s0 = sb + (i % 16) * 4, t = tb + warp * 16 + r;
      // Quads wholly above the diagonal (or past the chunk's end) are masked: skip their loads.
      const bool live = s0 <= t && t < Lc;
      const float4 v = live ? *reinterpret_cast<const float4 *>(cb + static_cast<size_t>(t) * p.Q + s0)
                            : make_float4(0.f, 0.f, 0.f, 0.f);
      const float cv[4] = {v.x, v.y, v.z, v.w};
      Pack<T, 4> m;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int s = s0 + k;
        m.v[k] = from_f32<T>(s <= t && t < Lc ? cv[k] * __expf(fminf(sdA[t] - sdA[s], 0.f)) * sdt[s] : 0.f);
      }
      *reinterpret_cast<Pack<T, 4> *>(myM + r * ldm + (i % 16) * 4) = m;
    }
    if (sbI < tbI) cp_async_wait<1>();
    else cp_async_wait<0>();
    __syncthreads();
    warp_mm<false, false>(acc, myM, ldm, sX + (sbI & 1) * xBuf, ldx, kTok);  // x block stored [k = s][p]
    __syncthreads();
  }

  // y = acc + D·x_t (x of the diagonal block is still in its buffer), staged in shared memory for 16-byte stores.
  const float Dh = p.D ? load_param(p.D, p.dDt, h) : 0.f;
  const T *sXd = sX + (tbI & 1) * xBuf;
#pragma unroll
  for (int j = 0; j < PT / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = warp * 16 + lane / 4 + (e >> 1) * 8, col = 8 * j + 2 * (lane & 3) + (e & 1);
      sY[r * ldy + col] = from_f32<T>(acc[j][e] + Dh * to_f32(sXd[r * ldx + col]));
    }
  __syncthreads();
  T *y = static_cast<T *>(p.y) + (static_cast<size_t>(b) * p.L + t0 + tb) * xs + h * p.P;
  const int rows = min(kTok, Lc - tb);
  constexpr int CPR = PT / E;
  for (int i = threadIdx.x; i < kTok * CPR; i += blockDim.x) {
    const int r = i / CPR, col = (i % CPR) * E;
    if (r >= rows || col >= p.P) continue;
    const T *src = sY + r * ldy + col;
    if (p.vec) {
      *reinterpret_cast<Pack<T, E> *>(y + r * xs + col) = *reinterpret_cast<const Pack<T, E> *>(src);
    } else {
      for (int e = 0; e < E && col + e < p.P; ++e) y[r * xs + col + e] = src[e];
    }
  }
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
  size_t dAcsBytes, statesBytes, startBytes, cbBytes, carryBytes;
  size_t total() const { return dAcsBytes + statesBytes + startBytes + cbBytes + carryBytes; }
};

SsdPlan make_plan(const SsdDims &d, DT dtype, bool needCarry, size_t budget) {
  SsdPlan p{};
  p.Q = std::clamp((d.chunkSize + 32) / 64 * 64, 64, 256);
  p.nChunks = ceil_div(d.len, p.Q);
  const size_t B = d.batch, H = d.heads, PN = static_cast<size_t>(d.headDim) * d.dState, Q = p.Q;
  const size_t perChunk = B * (H * (PN * (sizeof(float) + dt_bytes(dtype)) + sizeof(float) * Q) +
                               sizeof(float) * d.groups * Q * Q);
  p.carryBytes = needCarry ? align256(sizeof(float) * B * H * PN) : 0;
  const size_t room = budget > p.carryBytes + 1024 ? budget - p.carryBytes - 1024 : 0;
  // The scan's grid.y is (chunks of the run) × (64-token blocks per chunk).
  const size_t maxRun = 65535 / (Q / kTok);
  p.run = static_cast<int>(std::max<size_t>(1, std::min({static_cast<size_t>(p.nChunks), room / perChunk, maxRun})));
  p.dAcsBytes = align256(sizeof(float) * B * H * p.run * Q);
  p.statesBytes = align256(sizeof(float) * B * p.run * H * PN);
  p.startBytes = align256(dt_bytes(dtype) * B * p.run * H * PN);
  p.cbBytes = align256(sizeof(float) * B * p.run * d.groups * Q * Q);
  return p;
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
    const bool pass4 = (static_cast<size_t>(p.P) * p.N) % 4 == 0 && aligned_to(p.fin, 16);
    for (int c0 = 0; c0 < plan.nChunks; c0 += plan.run) {
      p.c0 = c0;
      p.nc = std::min(plan.run, plan.nChunks - c0);
      p.init = c0 == 0 ? stateIn : p.fin;
      ssd_chunk_state<T, PT, NT><<<dim3(p.H, p.nc, p.batch), kStateThreads, s1, stream>>>(p);
      LS_CHECK_LAUNCH();
      ssd_bmm<T, NT><<<dim3(nTb * (nTb + 1) / 2, p.nc, p.batch * p.G), 128, s2, stream>>>(p);
      LS_CHECK_LAUNCH();
      if (pass4) ssd_state_pass<T, 4><<<static_cast<unsigned>(ceil_div<size_t>(stateElems / 4, 256)), 256, 0, stream>>>(p);
      else ssd_state_pass<T, 1><<<static_cast<unsigned>(ceil_div<size_t>(stateElems, 256)), 256, 0, stream>>>(p);
      LS_CHECK_LAUNCH();
      ssd_chunk_scan<T, PT, NT><<<dim3(p.H, p.nc * nTb, p.batch), 128, s3, stream>>>(p);
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

/** The parameters both entry points share: the tensors and the dims. */
SsdParams io_params(void *y, const void *x, const float *dt, const float *A, const void *B, const void *C,
                    const void *D, DT dDt, const SsdDims &d) {
  SsdParams p{};
  p.x = x;
  p.B = B;
  p.C = C;
  p.D = D;
  p.dDt = dDt;
  p.y = y;
  p.dt = dt;
  p.A = A;
  p.batch = d.batch;
  p.L = d.len;
  p.H = d.heads;
  p.P = d.headDim;
  p.G = d.groups;
  p.N = d.dState;
  return p;
}

}  // namespace

size_t ssd_scan_workspace_bytes(const SsdDims &d, DT dtype) {
  // The carry buffer is always counted so that a null stateOut never needs more than this.
  const SsdPlan p = make_plan(d, dtype, true, kRunBudget);
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
  const SsdPlan plan = make_plan(d, dtype, stateOut == nullptr, std::min(workspaceBytes, kRunBudget));
  LS_REQUIRE(workspaceBytes >= plan.total(),
             "ssd_scan: workspace smaller than ssd_scan_workspace_bytes()");
  unsigned char *ws = static_cast<unsigned char *>(workspace);
  SsdParams p = io_params(y, x, dt, A, B, C, D, dDt, d);
  p.dAcs = reinterpret_cast<float *>(ws);
  p.states = reinterpret_cast<float *>(ws + plan.dAcsBytes);
  p.start = ws + plan.dAcsBytes + plan.statesBytes;
  p.cb = reinterpret_cast<float *>(ws + plan.dAcsBytes + plan.statesBytes + plan.startBytes);
  p.fin = stateOut ? stateOut : reinterpret_cast<float *>(ws + plan.total() - plan.carryBytes);
  p.Q = plan.Q;
  p.run = plan.run;
  const size_t e = 16 / dt_bytes(dtype);
  p.vec = d.headDim % e == 0 && d.dState % e == 0 && aligned_to(x, 16) && aligned_to(B, 16) && aligned_to(C, 16) &&
          aligned_to(y, 16);
  LS_DISPATCH_DT(dtype, T, { dispatch_dims<T>(p, plan, stateIn, stream); });
}

void ssm_step(void *y, float *state, const void *x, const float *dt, const float *A, const void *B, const void *C,
              const void *D, DT dDt, const SsdDims &d, DT dtype, cudaStream_t stream) {
  check_dims(d);
  LS_REQUIRE(d.len == 1, "ssm_step: dims.len must be 1");
  SsdParams p = io_params(y, x, dt, A, B, C, D, dDt, d);
  p.fin = state;
  const size_t rows = static_cast<size_t>(d.batch) * d.heads * d.headDim;
  if (rows == 0) return;
  LS_DISPATCH_DT(dtype, T, {
    ssm_step_kernel<T><<<static_cast<unsigned>(ceil_div<size_t>(rows, 8)), 256, 0, stream>>>(p);
    LS_CHECK_LAUNCH();
  });
}
