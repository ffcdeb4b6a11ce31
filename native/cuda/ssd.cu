// Mamba-2 SSD, following mamba_ssm's chunked algorithm (research/engines.md §4), in three kernels per run
// of chunks:
//   1. ssd_chunk_state: per (chunk, head) the inclusive cumsum of dt·A inside the chunk (f32, kept in the
//      workspace) and the chunk's own final state from a zero start, Σ_t exp(dA_last − dA_t)·dt_t·x_tᵀB_t.
//   2. ssd_state_pass: sequential over chunks, turns the per-chunk states into the state at the start of
//      each chunk (in place) and carries the running state to the next run of chunks / the final state.
//   3. ssd_chunk_scan: per (chunk, head, 64-token block) y = exp(dA_t)·C_t·S_start
//      + Σ_{s≤t} (C_t·B_s)·exp(dA_t − dA_s)·dt_s·x_s + D·x_t.
// The matrix products run on tensor cores (WMMA, bf16 in, f32 accumulate) for bf16 operands and on f32
// CUDA cores for f32 operands; everything else is f32. Runs of chunks bound the workspace at long lengths.
#include "ssd.h"

#include <mma.h>

#include <algorithm>
#include <type_traits>

#include "mma_util.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kTok = 64;  // tokens per tile
constexpr size_t kRunBudget = size_t(256) << 20;

__host__ __device__ constexpr int round16(int n) { return (n + 15) & ~15; }
__host__ __device__ constexpr size_t round128(size_t n) { return (n + 127) & ~size_t(127); }

__device__ __forceinline__ float load_param(const void *p, DT t, int i) {
  return t == DT::F32 ? static_cast<const float *>(p)[i] : __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
}

// C[M×N] (f32, row-major, ldc) += A[M×K]·B[K×N]. A is row-major (A[m·lda + k]) or, when ACol, column-major
// (A[k·lda + m]); B is row-major (B[k·ldb + n]) or, when BCol, column-major (B[n·ldb + k]). M, N, K are
// multiples of 16; the whole block cooperates and the caller synchronises around it.
template <bool ACol, bool BCol>
__device__ void tile_mm(const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *B, int ldb, float *C, int ldc, int M,
                        int N, int K) {
  using namespace nvcuda;
  using LA = std::conditional_t<ACol, wmma::col_major, wmma::row_major>;
  using LB = std::conditional_t<BCol, wmma::col_major, wmma::row_major>;
  const int warp = threadIdx.x >> 5, nw = blockDim.x >> 5, fn = N / 16;
  for (int f = warp; f < (M / 16) * fn; f += nw) {
    const int m0 = (f / fn) * 16, n0 = (f % fn) * 16;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(acc, C + m0 * ldc + n0, ldc, wmma::mem_row_major);
    for (int k = 0; k < K; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, LA> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LB> b;
      wmma::load_matrix_sync(a, ACol ? A + k * lda + m0 : A + m0 * lda + k, lda);
      wmma::load_matrix_sync(b, BCol ? B + n0 * ldb + k : B + k * ldb + n0, ldb);
      wmma::mma_sync(acc, a, b, acc);
    }
    wmma::store_matrix_sync(C + m0 * ldc + n0, acc, ldc, wmma::mem_row_major);
  }
}

template <bool ACol, bool BCol>
__device__ void tile_mm(const float *A, int lda, const float *B, int ldb, float *C, int ldc, int M, int N, int K) {
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
  float *dAcs;    // [batch, heads, runChunks, Q]
  float *states;  // [batch, runChunks, heads, P, N]
  const float *init;
  float *fin;
  int batch, L, H, P, G, N, Q, run, c0, nc;
  int P16, N16;
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

template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_chunk_state(SsdParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int cc = blockIdx.x, h = blockIdx.y, b = blockIdx.z, c = p.c0 + cc;
  const int t0 = c * p.Q, Lc = min(p.Q, p.L - t0), grp = h / (p.H / p.G);
  const int ldx = p.P16 + 8, ldb = p.N16 + 8, ldacc = p.N16 + 4;
  float *sdt = reinterpret_cast<float *>(smem);
  float *sdA = sdt + 256;
  T *sX = reinterpret_cast<T *>(smem + 2048);
  T *sB = reinterpret_cast<T *>(smem + 2048 + round128(sizeof(T) * kTok * ldx));
  float *sAcc = reinterpret_cast<float *>(smem + 2048 + round128(sizeof(T) * kTok * ldx) +
                                          round128(sizeof(T) * kTok * ldb));
  const float Ah = p.A[h];
  for (int t = threadIdx.x; t < p.Q; t += kThreads) {
    const float d = t < Lc ? p.dt[(static_cast<size_t>(b) * p.L + t0 + t) * p.H + h] : 0.f;
    sdt[t] = d;
    sdA[t] = d * Ah;
  }
  for (int i = threadIdx.x; i < p.P16 * ldacc; i += kThreads) sAcc[i] = 0.f;
  __syncthreads();
  if (threadIdx.x < 32) warp_scan_inplace(sdA, p.Q);
  __syncthreads();
  float *dAcs = p.dAcs + ((static_cast<size_t>(b) * p.H + h) * p.run + cc) * p.Q;
  for (int t = threadIdx.x; t < p.Q; t += kThreads) dAcs[t] = sdA[t];
  const float last = sdA[Lc - 1];

  const T *x = static_cast<const T *>(p.x);
  const T *Bm = static_cast<const T *>(p.B);
  for (int tb = 0; tb < Lc; tb += kTok) {
    for (int i = threadIdx.x; i < kTok * p.P16; i += kThreads) {
      const int r = i / p.P16, q = i % p.P16, t = tb + r;
      float v = 0.f;
      if (t < Lc && q < p.P) {
        const float w = __expf(fminf(last - sdA[t], 0.f)) * sdt[t];
        v = to_f32(x[((static_cast<size_t>(b) * p.L + t0 + t) * p.H + h) * p.P + q]) * w;
      }
      sX[r * ldx + q] = from_f32<T>(v);
    }
    for (int i = threadIdx.x; i < kTok * p.N16; i += kThreads) {
      const int r = i / p.N16, n = i % p.N16, t = tb + r;
      const float v =
          t < Lc && n < p.N ? to_f32(Bm[((static_cast<size_t>(b) * p.L + t0 + t) * p.G + grp) * p.N + n]) : 0.f;
      sB[r * ldb + n] = from_f32<T>(v);
    }
    __syncthreads();
    tile_mm<true, false>(sX, ldx, sB, ldb, sAcc, ldacc, p.P16, p.N16, kTok);
    __syncthreads();
  }
  float *st = p.states + ((static_cast<size_t>(b) * p.run + cc) * p.H + h) * p.P * p.N;
  for (int i = threadIdx.x; i < p.P * p.N; i += kThreads) st[i] = sAcc[(i / p.N) * ldacc + i % p.N];
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

template <typename T>
__global__ void __launch_bounds__(kThreads) ssd_chunk_scan(SsdParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int nTb = p.Q / kTok;
  const int cc = blockIdx.x / nTb, tb = (blockIdx.x % nTb) * kTok, h = blockIdx.y, b = blockIdx.z;
  const int c = p.c0 + cc, t0 = c * p.Q, Lc = min(p.Q, p.L - t0), grp = h / (p.H / p.G);
  if (tb >= Lc) return;
  const int ldc = p.N16 + 8, ldx = p.P16 + 8, ldy = p.P16 + 4, ldcb = kTok + 4, ldm = kTok + 8;
  unsigned char *q = smem;
  float *sdt = reinterpret_cast<float *>(q);
  float *sdA = sdt + 256;
  q += 2048;
  T *sC = reinterpret_cast<T *>(q);
  q += round128(sizeof(T) * kTok * ldc);
  T *sBk = reinterpret_cast<T *>(q);  // also holds the chunk-start state [P16][ldc] before the B tiles
  q += round128(sizeof(T) * max(kTok, p.P16) * ldc);
  float *sY = reinterpret_cast<float *>(q);
  q += round128(sizeof(float) * kTok * ldy);
  float *sCB = reinterpret_cast<float *>(q);
  q += round128(sizeof(float) * kTok * ldcb);
  T *sM = reinterpret_cast<T *>(q);
  q += round128(sizeof(T) * kTok * ldm);
  T *sX = reinterpret_cast<T *>(q);

  const T *x = static_cast<const T *>(p.x);
  const T *Bm = static_cast<const T *>(p.B);
  const T *Cm = static_cast<const T *>(p.C);
  const float *dAcs = p.dAcs + ((static_cast<size_t>(b) * p.H + h) * p.run + cc) * p.Q;
  for (int t = threadIdx.x; t < p.Q; t += kThreads) {
    sdA[t] = dAcs[t];
    sdt[t] = t < Lc ? p.dt[(static_cast<size_t>(b) * p.L + t0 + t) * p.H + h] : 0.f;
  }
  auto row_of = [&](int t) { return (static_cast<size_t>(b) * p.L + t0 + t); };
  for (int i = threadIdx.x; i < kTok * p.N16; i += kThreads) {
    const int r = i / p.N16, n = i % p.N16, t = tb + r;
    sC[r * ldc + n] = from_f32<T>(t < Lc && n < p.N ? to_f32(Cm[(row_of(t) * p.G + grp) * p.N + n]) : 0.f);
  }
  const float *st = p.states + ((static_cast<size_t>(b) * p.run + cc) * p.H + h) * p.P * p.N;
  for (int i = threadIdx.x; i < p.P16 * p.N16; i += kThreads) {
    const int r = i / p.N16, n = i % p.N16;
    sBk[r * ldc + n] = from_f32<T>(r < p.P && n < p.N ? st[r * p.N + n] : 0.f);
  }
  for (int i = threadIdx.x; i < kTok * ldy; i += kThreads) sY[i] = 0.f;
  __syncthreads();
  // Contribution of the state entering the chunk: (C·Sᵀ)[t, p]·exp(dA_t).
  tile_mm<false, true>(sC, ldc, sBk, ldc, sY, ldy, kTok, p.P16, p.N16);
  __syncthreads();
  for (int i = threadIdx.x; i < kTok * p.P16; i += kThreads) {
    const int r = i / p.P16, t = min(tb + r, p.Q - 1);
    sY[r * ldy + i % p.P16] *= __expf(sdA[t]);
  }
  for (int sb = 0; sb <= tb; sb += kTok) {
    for (int i = threadIdx.x; i < kTok * p.N16; i += kThreads) {
      const int r = i / p.N16, n = i % p.N16, s = sb + r;
      sBk[r * ldc + n] = from_f32<T>(s < Lc && n < p.N ? to_f32(Bm[(row_of(s) * p.G + grp) * p.N + n]) : 0.f);
    }
    for (int i = threadIdx.x; i < kTok * p.P16; i += kThreads) {
      const int r = i / p.P16, pp = i % p.P16, s = sb + r;
      sX[r * ldx + pp] = from_f32<T>(s < Lc && pp < p.P ? to_f32(x[(row_of(s) * p.H + h) * p.P + pp]) : 0.f);
    }
    for (int i = threadIdx.x; i < kTok * ldcb; i += kThreads) sCB[i] = 0.f;
    __syncthreads();
    tile_mm<false, true>(sC, ldc, sBk, ldc, sCB, ldcb, kTok, kTok, p.N16);
    __syncthreads();
    for (int i = threadIdx.x; i < kTok * kTok; i += kThreads) {
      const int r = i / kTok, cidx = i % kTok, t = tb + r, s = sb + cidx;
      float v = 0.f;
      if (s <= t && t < Lc) v = sCB[r * ldcb + cidx] * __expf(fminf(sdA[t] - sdA[s], 0.f)) * sdt[s];
      sM[r * ldm + cidx] = from_f32<T>(v);
    }
    __syncthreads();
    tile_mm<false, false>(sM, ldm, sX, ldx, sY, ldy, kTok, p.P16, kTok);
    __syncthreads();
  }
  const float Dh = p.D ? load_param(p.D, p.dDt, h) : 0.f;
  T *y = static_cast<T *>(p.y);
  for (int i = threadIdx.x; i < kTok * p.P; i += kThreads) {
    const int r = i / p.P, pp = i % p.P, t = tb + r;
    if (t >= Lc) continue;
    const size_t o = (row_of(t) * p.H + h) * p.P + pp;
    store_f32(y, o, sY[r * ldy + pp] + Dh * to_f32(x[o]));
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
  size_t dAcsBytes, statesBytes, carryBytes;
};

SsdPlan make_plan(const SsdDims &d, bool needCarry, size_t budget) {
  SsdPlan p{};
  p.Q = std::clamp((d.chunkSize + 32) / 64 * 64, 64, 256);
  p.nChunks = ceil_div(d.len, p.Q);
  const size_t perChunk = sizeof(float) * static_cast<size_t>(d.batch) * d.heads *
                          (static_cast<size_t>(d.headDim) * d.dState + p.Q);
  p.carryBytes = needCarry ? align256(sizeof(float) * static_cast<size_t>(d.batch) * d.heads * d.headDim * d.dState) : 0;
  const size_t room = budget > p.carryBytes + 512 ? budget - p.carryBytes - 512 : 0;
  p.run = static_cast<int>(std::max<size_t>(1, std::min<size_t>(p.nChunks, room / std::max<size_t>(perChunk, 1))));
  p.dAcsBytes = align256(sizeof(float) * static_cast<size_t>(d.batch) * d.heads * p.run * p.Q);
  p.statesBytes = align256(sizeof(float) * static_cast<size_t>(d.batch) * p.run * d.heads * d.headDim * d.dState);
  return p;
}

size_t state_smem(int P16, int N16, size_t tb) {
  return 2048 + round128(tb * kTok * (P16 + 8)) + round128(tb * kTok * (N16 + 8)) +
         round128(sizeof(float) * P16 * (N16 + 4));
}
size_t scan_smem(int P16, int N16, size_t tb) {
  return 2048 + round128(tb * kTok * (N16 + 8)) + round128(tb * std::max(kTok, P16) * (N16 + 8)) +
         round128(sizeof(float) * kTok * (P16 + 4)) + round128(sizeof(float) * kTok * (kTok + 4)) +
         round128(tb * kTok * (kTok + 8)) + round128(tb * kTok * (P16 + 8));
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
  return p.dAcsBytes + p.statesBytes + p.carryBytes;
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
  LS_REQUIRE(workspaceBytes >= plan.dAcsBytes + plan.statesBytes + plan.carryBytes,
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
  p.fin = stateOut ? stateOut : reinterpret_cast<float *>(ws + plan.dAcsBytes + plan.statesBytes);
  p.batch = d.batch;
  p.L = d.len;
  p.H = d.heads;
  p.P = d.headDim;
  p.G = d.groups;
  p.N = d.dState;
  p.Q = plan.Q;
  p.run = plan.run;
  p.P16 = round16(d.headDim);
  p.N16 = round16(d.dState);
  LS_DISPATCH_DT(dtype, T, {
    const size_t s1 = state_smem(p.P16, p.N16, sizeof(T)), s3 = scan_smem(p.P16, p.N16, sizeof(T));
    LS_REQUIRE(std::max(s1, s3) <= 227 * 1024, "ssd_scan: headDim/dState too large for shared memory");
    LS_CUDA_CHECK(cudaFuncSetAttribute(ssd_chunk_state<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(s1)));
    LS_CUDA_CHECK(cudaFuncSetAttribute(ssd_chunk_scan<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(s3)));
    for (int c0 = 0; c0 < plan.nChunks; c0 += plan.run) {
      p.c0 = c0;
      p.nc = std::min(plan.run, plan.nChunks - c0);
      p.init = c0 == 0 ? stateIn : p.fin;
      ssd_chunk_state<T><<<dim3(p.nc, d.heads, d.batch), kThreads, s1, stream>>>(p);
      LS_CHECK_LAUNCH();
      ssd_state_pass<<<static_cast<unsigned>(ceil_div<size_t>(stateElems, 256)), 256, 0, stream>>>(p);
      LS_CHECK_LAUNCH();
      ssd_chunk_scan<T><<<dim3(p.nc * (p.Q / kTok), d.heads, d.batch), kThreads, s3, stream>>>(p);
      LS_CHECK_LAUNCH();
    }
  });
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
