// Backward kernels, fused losses and AdamW (see grad.h). Reference semantics: src/backends/cpu/grad-*.ts.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "device_util.cuh"
#include "grad.h"
#include "mma_tiles.cuh"

namespace {

constexpr int kBlock = 256;  // conv_dw_kernel assumes 8 warps

__device__ __forceinline__ float sigmoidf_(float v) { return 1.f / (1.f + expf(-v)); }
__device__ __forceinline__ float siluf_(float v) { return v * sigmoidf_(v); }
__device__ __forceinline__ float silu_grad(float v) {
  const float s = sigmoidf_(v);
  return s * (1.f + v * (1.f - s));
}

template <typename T>
__device__ __forceinline__ float ld(const T *p, size_t i) {
  return to_f32(p[i]);
}

// ---- SSD scan ----------------------------------------------------------------------------------------------
//
// Both recurrences of the scan are linear in the state, with one scalar decay a_t = exp(dt_t·A_h) per (batch,
// token, head):  forward s_t = a_t·s_{t−1} + dt_t·x_t[p]·B_t[n],  backward ds_{t−1} = a_t·(ds_t + dy_t[p]·C_t[n]).
// So the sequence is cut into chunks worked on in parallel, in three launches:
//   1. ssd_chunk_local_kernel, per (batch, head, tile of state rows, chunk): the chunk's end state from a zero
//      start, the gradient reaching its start from a zero gradient at its end, and its decay Π a_t;
//   2. ssd_chunk_carry_kernel, per state element: the true state before and gradient after every chunk, by the
//      short recurrences over chunks (from s0 and from dStateOut; the gradient before chunk 0 is dState);
//   3. per chunk, from its true start state and end gradient, dx, dB, dC, ddt, dA and dD: where head and state
//      dims are ≤ 64, ssd_chunk_matrix_kernel, per (batch, head, chunk of 32), as products of the chunk's
//      token × token matrices (below); else ssd_backward_kernel, per (batch, head, tile, chunk), the reverse
//      recurrence token by token.
// A long sequential walk of one block per head left the GPU idle; now the longest chain is one chunk plus
// ⌈len/chunk⌉ multiply-adds in launch 2. Launch 3 needs the chunk's states in reverse order: it keeps one every
// kSsdSub tokens and recomputes the kSsdSub states of each stretch into registers before walking it back. (It
// once kept every in-chunk state in a global scratch, 4·len·heads·headDim·dState bytes written and read again,
// which a 256 MB budget held to one block walking all chunks per head: 8.8 ms a call at the tiny needle
// Vamba's 128 videos of 512 tokens.)

constexpr int kSsdChunk = 64;
constexpr int kSsdMatChunk = 32;  // tokens per chunk of ssd_chunk_matrix_kernel
constexpr int kSsdMatDims = 64;   // the largest head and state dims it takes (shared memory ~92 KB at 64 and 64)
constexpr size_t kSsdBudget = size_t(256) << 20;  // boundary arrays past it get √len chunks
constexpr int kSsdSub = 16;    // tokens whose states a thread holds in registers while walking them back
constexpr int kSsdMarks = 32;  // states a thread keeps per chunk, evenly spaced: the stretches start from them

struct SsdPlan {
  int chunk, chunks;   // tokens per chunk (the last one may be shorter), chunks per sequence
  int pTile, pBlocks;  // rows p of the state per block (pTile·dState ≤ 256 threads, one element each)
  int threads;         // per block: pTile·dState rounded up to whole warps (small states leave no idle warps)
  int every;           // tokens between the states a thread keeps (a multiple of kSsdSub; ≤ kSsdMarks of them)
  bool matrix;         // launch 3 is ssd_chunk_matrix_kernel (chunks of kSsdMatChunk)
  size_t bounds, decay, acc;  // float counts (bounds: of the states, and again of the gradients)
  size_t bytes() const { return sizeof(float) * (2 * bounds + decay + 2 * acc); }
};

SsdPlan ssd_plan_with(const SsdDims &d, int chunk) {
  SsdPlan p{};
  p.pTile = std::max(1, std::min(d.headDim, kBlock / std::max(d.dState, 1)));
  p.pBlocks = ceil_div(d.headDim, p.pTile);
  p.threads = std::min(kBlock, ceil_div(p.pTile * d.dState, 32) * 32);
  if (d.len <= 0) return p;  // nothing to reverse (the host copies dStateOut to dState)
  p.chunk = std::min(d.len, chunk);
  p.chunks = ceil_div(d.len, p.chunk);
  p.every = kSsdSub * ceil_div(p.chunk, kSsdSub * kSsdMarks);
  const size_t bh = size_t(d.batch) * d.heads, state = bh * d.headDim * d.dState;  // floats of one state per head
  p.bounds = (p.chunks + 1) * state;
  p.decay = bh * p.chunks;
  p.acc = size_t(d.batch) * d.len * d.groups * d.dState;
  return p;
}

/**
 * The plan for a workspace of `room` bytes. Chunks of 32 tokens for the matrix kernel where the dims allow it,
 * else 64 tokens: short chains and many blocks (small models fill no GPU with their heads), unless the boundary
 * arrays (2·(len/chunk + 1) states per (batch, head)) would pass kSsdBudget or `room`: then chunks of
 * max(64, ⌈√len⌉) tokens for the token-by-token kernel, about 2√len states per head.
 */
SsdPlan ssd_plan(const SsdDims &d, size_t room) {
  if (d.headDim <= kSsdMatDims && d.dState <= kSsdMatDims) {
    SsdPlan m = ssd_plan_with(d, kSsdMatChunk);
    m.matrix = true;
    if (sizeof(float) * 2 * m.bounds <= kSsdBudget && m.bytes() <= room) return m;
  }
  const SsdPlan p = ssd_plan_with(d, kSsdChunk);
  if (sizeof(float) * 2 * p.bounds <= kSsdBudget && p.bytes() <= room) return p;
  const int root = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(std::max(d.len, 1)))));
  return ssd_plan_with(d, std::max(kSsdChunk, root));
}

/** One (batch, head) of the scan (bh = b·heads + h) and where its tokens' values lie. */
struct SsdHead {
  SsdDims d;
  int bh, b, h, grp;
  __device__ SsdHead(const SsdDims &dims, int bhIndex)
      : d(dims), bh(bhIndex), b(bhIndex / dims.heads), h(bhIndex % dims.heads),
        grp(h / (dims.heads / dims.groups)) {}
  /** Offsets of token t's head in x/dy/dx, its group in B/C, its head in dt/ddt. */
  __device__ size_t xAt(int t) const { return (size_t(b) * d.len + t) * d.heads * d.headDim + size_t(h) * d.headDim; }
  __device__ size_t bcAt(int t) const { return ((size_t(b) * d.len + t) * d.groups + grp) * d.dState; }
  __device__ size_t dtAt(int t) const { return (size_t(b) * d.len + t) * d.heads + h; }
};

/** A thread's place in a block of one (batch, head, tile of pTile state rows): it owns state element e = p·N + n. */
struct SsdThread : SsdHead {
  int p0, p, n, e;
  bool owner;  // false for the idle threads past pTile·N and for rows past headDim
  __device__ SsdThread(const SsdDims &dims, const SsdPlan &plan, int tile) : SsdHead(dims, tile / plan.pBlocks) {
    p0 = (tile % plan.pBlocks) * plan.pTile;
    p = p0 + static_cast<int>(threadIdx.x) / d.dState;
    n = static_cast<int>(threadIdx.x) % d.dState;
    owner = static_cast<int>(threadIdx.x) < plan.pTile * d.dState && p < d.headDim;
    e = p * d.dState + n;
  }
  /** Token t's decay a_t = exp(dt_t·A_h). */
  __device__ float decay(const float *dt, float Ah, int t) const { return expf(dt[dtAt(t)] * Ah); }
  /** The state after token t from the state s before it: a_t·s + dt_t·x_t[p]·B_t[n]. */
  template <typename T>
  __device__ float advance(float s, float a, int t, const float *dt, const T *x, const T *B) const {
    return a * s + dt[dtAt(t)] * ld(x, xAt(t) + p) * ld(B, bcAt(t) + n);
  }
  /** This head's state (or gradient) before chunk c in a boundary array of chunks + 1 states per head. */
  __device__ size_t bound(const SsdPlan &plan, int c) const {
    return (size_t(bh) * (plan.chunks + 1) + c) * d.headDim * d.dState + e;
  }
};

/**
 * Per (batch, head, tile, chunk c), one state element per thread: the chunk's end state from a zero start into
 * bounds[c + 1], the gradient at its start from a zero gradient at its end into grads[c], and (tile 0) its decay.
 */
template <typename T>
__global__ void ssd_chunk_local_kernel(float *__restrict__ bounds, float *__restrict__ grads,
                                       float *__restrict__ decay, const T *__restrict__ dy,
                                       const T *__restrict__ x, const float *__restrict__ dt,
                                       const float *__restrict__ A, const T *__restrict__ B,
                                       const T *__restrict__ C, SsdDims d, SsdPlan plan) {
  const int c = blockIdx.x % plan.chunks;
  const SsdThread th(d, plan, blockIdx.x / plan.chunks);
  if (!th.owner) return;
  const int t0 = c * plan.chunk, t1 = min(d.len, t0 + plan.chunk);
  const float Ah = A[th.h];
  float s = 0.f, g = 0.f, dec = 1.f;
  for (int t = t0; t < t1; t++) {
    const float a = th.decay(dt, Ah, t);
    s = th.advance(s, a, t, dt, x, B);
    dec *= a;
  }
  for (int t = t1 - 1; t >= t0; t--)
    g = th.decay(dt, Ah, t) * (g + ld(dy, th.xAt(t) + th.p) * ld(C, th.bcAt(t) + th.n));
  bounds[th.bound(plan, c + 1)] = s;
  grads[th.bound(plan, c)] = g;
  if (th.p0 == 0 && threadIdx.x == 0) decay[size_t(th.bh) * plan.chunks + c] = dec;
}

/**
 * v ← decay_c·v + own_c over the chunks (forward: c = 0, 1, … with own_c at base[c + 1]; else c = chunks − 1, …,
 * 0 with own_c at base[c]), each result replacing its own_c in `base`, one element's boundary array (stride
 * `stride`). Returns the last v.
 * Loads come kRun chunks at a time ahead of the dependent multiply-adds, so the chain rarely waits on memory
 * (a 16k-token sequence has 256 chunks: 8 waits per direction).
 */
__device__ float ssd_carry(float v, float *base, size_t stride, const float *decay, int chunks, bool forward) {
  constexpr int kRun = 32;
  for (int k0 = 0; k0 < chunks; k0 += kRun) {
    float own[kRun], dk[kRun];
#pragma unroll
    for (int j = 0; j < kRun; j++) {
      const int k = k0 + j, c = forward ? k : chunks - 1 - k;
      own[j] = k < chunks ? base[size_t(c + forward) * stride] : 0.f;
      dk[j] = k < chunks ? decay[c] : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kRun; j++) {
      const int k = k0 + j, c = forward ? k : chunks - 1 - k;
      if (k < chunks) base[size_t(c + forward) * stride] = v = dk[j] * v + own[j];
    }
  }
  return v;
}

/**
 * One thread per state element of every (batch, head): turns the chunks' own end states into the true state
 * before each chunk (bounds[0] = s0) and their own start gradients into the true gradient before each chunk
 * (grads[chunks] = dStateOut); grads[0] is dState.
 */
__global__ void ssd_chunk_carry_kernel(float *__restrict__ bounds, float *__restrict__ grads,
                                       float *__restrict__ dState, const float *__restrict__ decay,
                                       const float *__restrict__ s0, const float *__restrict__ dStateOut,
                                       size_t elems, int PN, int chunks) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= elems) return;
  const size_t bh = i / PN, at = bh * (chunks + 1) * PN + i % PN;
  const float *dec = decay + bh * chunks;
  const float s = s0 ? s0[i] : 0.f, gOut = dStateOut ? dStateOut[i] : 0.f;
  bounds[at] = s;
  ssd_carry(s, bounds + at, PN, dec, chunks, true);
  grads[at + size_t(chunks) * PN] = gOut;
  const float g = ssd_carry(gOut, grads + at, PN, dec, chunks, false);
  if (dState) dState[i] = g;
}

/** One token's inputs at a thread's state element: dt, dy[p], x[p], B[n], C[n]. */
struct SsdToken {
  float dt, dy, x, B, C;
};

/**
 * One block per (batch, head, tile of pTile state rows, chunk c); each thread owns one state element e = p·N + n.
 * A forward pass from the chunk's true start (bounds[c]) keeps the state every plan.every tokens; then the chunk
 * is walked back token by token from the gradient after it (grads[c + 1]), one stretch of kSsdSub tokens at a
 * time, whose states are first recomputed into registers from the kept state before it. Per token, the
 * reductions over n (dx), over p (dB, dC) and over both (ddt, dA) go through shared-memory atomics (one barrier a
 * token: three rotating sets), then global atomics across tiles, chunks and the heads of a group.
 * A token's inputs are loaded while the previous one's reductions run, so the walk does not wait on memory.
 */
template <typename T, typename TD>
__global__ void ssd_backward_kernel(T *__restrict__ dx, float *__restrict__ ddt, float *__restrict__ dA,
                                    float *__restrict__ dBacc, float *__restrict__ dCacc, float *__restrict__ dD,
                                    const T *__restrict__ dy, const T *__restrict__ x, const float *__restrict__ dt,
                                    const float *__restrict__ A, const T *__restrict__ B, const T *__restrict__ C,
                                    const TD *__restrict__ D, const float *__restrict__ bounds,
                                    const float *__restrict__ grads, SsdDims d, SsdPlan plan) {
  const int c = blockIdx.x % plan.chunks;
  const SsdThread th(d, plan, blockIdx.x / plan.chunks);
  const int N = d.dState, tid = threadIdx.x, lane = tid & 31;
  const int p = th.p, n = th.n;
  const bool owner = th.owner;
  const bool rowsInWarp = N <= 32 && (32 % N) == 0;  // a warp holds 32 / N whole rows (threads p·N + n)
  // Per-token sums in three rotating sets (row sums, column sums of B and C, two scalars): token k adds into set
  // k % 3 and, after its one barrier, reads it and zeroes set (k + 2) % 3 — read at token k − 1, before that
  // barrier, and written at token k + 2, after the next one.
  extern __shared__ float sh[];
  const int set = plan.pTile + 2 * N + 2;
  for (int i = tid; i < 2 * set; i += blockDim.x) sh[i] = 0.f;
  __syncthreads();
  int k = 0;
  const float Ah = A[th.h];
  const float Dh = D ? to_f32(D[th.h]) : 0.f;
  auto load = [&](int t) {
    const size_t xo = th.xAt(t) + p, bo = th.bcAt(t) + n;
    return SsdToken{dt[th.dtAt(t)], ld(dy, xo), ld(x, xo), ld(B, bo), ld(C, bo)};
  };
  const int t0 = c * plan.chunk, t1 = min(d.len, t0 + plan.chunk);
  float marks[kSsdMarks];  // the state before token t0 + m·every
  if (owner) {
    float s = bounds[th.bound(plan, c)];
    for (int t = t0; t < t1; t++) {
      if ((t - t0) % plan.every == 0) marks[(t - t0) / plan.every] = s;
      s = th.advance(s, th.decay(dt, Ah, t), t, dt, x, B);
    }
  }
  float ds = owner ? grads[th.bound(plan, c + 1)] : 0.f;
  float dAloc = 0.f, dDloc = 0.f;
  SsdToken next = owner ? load(t1 - 1) : SsdToken{};
  for (int u0 = t0 + (t1 - 1 - t0) / kSsdSub * kSsdSub; u0 >= t0; u0 -= kSsdSub) {
    // The stretch u0 … u0 + kSsdSub − 1: its states into registers (hist[j]: after token u0 + j; before: start).
    float hist[kSsdSub], start = 0.f;
    if (owner) {
      const int m = (u0 - t0) / plan.every;
      float s = marks[m];
      for (int t = t0 + m * plan.every; t < u0; t++) s = th.advance(s, th.decay(dt, Ah, t), t, dt, x, B);
      start = s;
#pragma unroll
      for (int j = 0; j < kSsdSub; j++) {
        if (u0 + j < t1) s = th.advance(s, th.decay(dt, Ah, u0 + j), u0 + j, dt, x, B);
        hist[j] = s;
      }
    }
#pragma unroll
    for (int j = kSsdSub - 1; j >= 0; j--) {
      const int t = u0 + j;
      if (t >= t1) continue;  // the same for the whole block
      const SsdToken u = next;
      if (owner && t > t0) next = load(t - 1);
      float *redP = sh + (k % 3) * set, *redB = redP + plan.pTile, *redC = redB + N, *scal = redC + N;
      const float a = expf(u.dt * Ah);
      float lp = 0.f, lxb = 0.f, row = 0.f, colC = 0.f, colB = 0.f;
      if (owner) {
        const float dse = ds + u.dy * u.C;
        const float sT = hist[j];
        const float sPrev = j > 0 ? hist[j - 1] : start;
        const float dsB = dse * u.B;
        row = dsB;
        colC = u.dy * sT;
        colB = dse * u.x;
        lp = dse * sPrev;
        lxb = dsB * u.x;
        ds = a * dse;
      }
      // Sums over n (row: dx) and over p (colC, colB: dC, dB). Where whole rows lie in a warp (N a power of two
      // ≤ 32), the row sum is a shuffle within its lanes and the warp's rows are summed before the shared
      // atomics; else the atomics take every thread's value. (Same-address shared atomics serialise: 32 of them
      // per warp and token for the row sums at N = 32.)
      if (rowsInWarp) {
        for (int o = N >> 1; o > 0; o >>= 1) row += __shfl_xor_sync(0xffffffffu, row, o);
        for (int o = N; o < 32; o <<= 1) {
          colC += __shfl_xor_sync(0xffffffffu, colC, o);
          colB += __shfl_xor_sync(0xffffffffu, colB, o);
        }
        if (owner && lane < N) {
          atomicAdd(&redC[n], colC);
          atomicAdd(&redB[n], colB);
        }
      } else if (owner) {
        atomicAdd(&redC[n], colC);
        atomicAdd(&redP[p - th.p0], row);
        atomicAdd(&redB[n], colB);
      }
      lp = warp_sum(lp);
      lxb = warp_sum(lxb);
      if (lane == 0) {
        atomicAdd(&scal[0], lp);
        atomicAdd(&scal[1], lxb);
      }
      __syncthreads();
      // The owners of n = 0 write their row's dx; those of row p0 (threads n) add their n's dB, dC.
      const size_t xo = th.xAt(t) + p, bo = th.bcAt(t) + n;
      if (owner && n == 0) {
        float g = u.dt * (rowsInWarp ? row : redP[p - th.p0]);
        if (D) {
          g += Dh * u.dy;
          dDloc += u.dy * u.x;
        }
        dx[xo] = from_f32<T>(g);
      }
      if (owner && p == th.p0) {
        atomicAdd(&dBacc[bo], u.dt * redB[n]);
        atomicAdd(&dCacc[bo], redC[n]);
      }
      if (tid == 0) {
        atomicAdd(&ddt[th.dtAt(t)], scal[1] + Ah * a * scal[0]);
        dAloc += u.dt * a * scal[0];
      }
      float *later = sh + ((k + 2) % 3) * set;
      for (int i = tid; i < set; i += blockDim.x) later[i] = 0.f;
      k++;
    }
  }
  dDloc = block_sum(dDloc);
  if (tid == 0) {
    atomicAdd(&dA[th.h], dAloc);
    if (dD) atomicAdd(&dD[th.h], dDloc);
  }
}

/**
 * Where ssd_chunk_matrix_kernel keeps things in shared memory (float offsets; rows padded to P + 1, N + 1, L + 1
 * floats so that lanes walking down a column hit distinct banks). g and s (the chunk's end gradient and start
 * state) are read before the token × token matrices M1, M2 are formed, which then take their place.
 */
struct SsdMatLayout {
  int L, P1, N1, L1;
  int x, dy, B, C, gs, XG, DS, BG, dt, l, rowR, colR, dl, v, total;  // gs: g and s, then M1 and M2
  __host__ __device__ SsdMatLayout(int chunk, int P, int N) : L(chunk), P1(P + 1), N1(N + 1), L1(chunk + 1) {
    x = 0;
    dy = x + L * P1;
    B = dy + L * P1;
    C = B + L * N1;
    gs = C + L * N1;
    XG = gs + (2 * P * N1 > 2 * L * L1 ? 2 * P * N1 : 2 * L * L1);
    DS = XG + L * N1;
    BG = DS + L * N1;
    dt = BG + L * P1;
    l = dt + L;
    rowR = l + L;
    colR = rowR + L;
    dl = colR + L;
    v = dl + L;
    total = v + L;
  }
};

/**
 * One block per (batch, head, chunk of L ≤ 32 tokens) with the chunk's true start state s and end gradient g, in
 * the chunk's own log-decays l_t = Σ_{k≤t} dt_k·A (so the state after τ reaches t scaled by e(t, τ) = exp(l_t − l_τ)):
 *   M1[t', τ] = e(t', τ)·C_t'·B_τ,  M2[t', τ] = e(t', τ)·dy_t'·x_τ  (t' ≥ τ),
 *   dx_t   = dt_t·r_t + D·dy_t,     r_t = Σ_{t'≥t} M1[t', t]·dy_t' + e(L−1, t)·g·B_t  (= Σ_n dS_t[·, n]·B_t[n])
 *   dB_t   = dt_t·(Σ_{t'≥t} M2[t', t]·C_t' + e(L−1, t)·x_tᵀg)
 *   dC_t   = Σ_{τ≤t} M2[t, τ]·dt_τ·B_τ + e^{l_t}·dy_tᵀs
 *   ddt_t  = x_t·r_t + A·q_t,  dA = Σ_t dt_t·q_t,  q_t = Σ_{k≥t} dl_k  (the gradient of log a_t)
 * where dl_k, the gradient of l_k, gathers y's pair terms R[t', τ] = M1[t', τ]·W[t', τ]·dt_τ (W = dy_t'·x_τ: + at t',
 * − at τ), the start state's e^{l_k}·C_kᵀ(sᵀdy_k), and the end state's −v_k, v_k = e(L−1, k)·dt_k·x_kᵀgB_k (all of
 * them, and e^{l_{L−1}}·⟨g, s⟩, + at L − 1). All f32 from shared memory; dB, dC add into f32 sums over the group's
 * heads by atomics. (The token-by-token walk of ssd_backward_kernel took 8.2 ms a call at the tiny needle Vamba's
 * 128 videos of 256 tokens on an H100: a barrier and row atomics per token.)
 */
template <typename T, typename TD>
__global__ void __launch_bounds__(kBlock)
    ssd_chunk_matrix_kernel(T *__restrict__ dx, float *__restrict__ ddt, float *__restrict__ dA,
                            float *__restrict__ dBacc, float *__restrict__ dCacc, float *__restrict__ dD,
                            const T *__restrict__ dy, const T *__restrict__ x, const float *__restrict__ dt,
                            const float *__restrict__ A, const T *__restrict__ B, const T *__restrict__ C,
                            const TD *__restrict__ D, const float *__restrict__ bounds,
                            const float *__restrict__ grads, SsdDims d, SsdPlan plan) {
  const int c = blockIdx.x % plan.chunks;
  const SsdHead hd(d, blockIdx.x / plan.chunks);
  const int P = d.headDim, N = d.dState, t0 = c * plan.chunk, L = min(d.len - t0, plan.chunk);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nt = blockDim.x;
  const SsdMatLayout o(plan.chunk, P, N);
  extern __shared__ float sh[];
  float *sx = sh + o.x, *sdy = sh + o.dy, *sB = sh + o.B, *sC = sh + o.C, *sg = sh + o.gs, *ss = sg + P * o.N1;
  float *M1 = sh + o.gs, *M2 = M1 + o.L * o.L1, *XG = sh + o.XG, *DS = sh + o.DS, *BG = sh + o.BG;
  float *sdt = sh + o.dt, *sl = sh + o.l, *rowR = sh + o.rowR, *colR = sh + o.colR, *dl = sh + o.dl, *sv = sh + o.v;
  const float Ah = A[hd.h], Dh = D ? to_f32(D[hd.h]) : 0.f;
  const size_t state = size_t(P) * N;
  const float *g = grads + (size_t(hd.bh) * (plan.chunks + 1) + c + 1) * state;
  const float *s = bounds + (size_t(hd.bh) * (plan.chunks + 1) + c) * state;
  // The chunk's token t (from t0).
  auto xAt = [&](int t, int p) { return hd.xAt(t0 + t) + p; };
  auto bcAt = [&](int t, int n) { return hd.bcAt(t0 + t) + n; };
  auto dtAt = [&](int t) { return hd.dtAt(t0 + t); };
  for (int i = tid; i < L * P; i += nt) {
    const int t = i / P, p = i % P;
    sx[t * o.P1 + p] = ld(x, xAt(t, p));
    sdy[t * o.P1 + p] = ld(dy, xAt(t, p));
  }
  for (int i = tid; i < L * N; i += nt) {
    const int t = i / N, n = i % N;
    sB[t * o.N1 + n] = ld(B, bcAt(t, n));
    sC[t * o.N1 + n] = ld(C, bcAt(t, n));
  }
  float gsLocal = 0.f;
  for (int i = tid; i < P * N; i += nt) {
    const int p = i / N, n = i % N;
    sg[p * o.N1 + n] = g[i];
    ss[p * o.N1 + n] = s[i];
    gsLocal += g[i] * s[i];
  }
  for (int t = tid; t < L; t += nt) {
    sdt[t] = dt[dtAt(t)];
    colR[t] = 0.f;
  }
  const float gs = block_sum(gsLocal);  // ⟨g, s⟩ (its barriers also publish the loads)
  if (tid == 0) {
    float acc = 0.f;
    for (int t = 0; t < L; t++) sl[t] = acc += sdt[t] * Ah;
  }
  // The rank-N and rank-P parts: XG = x·g, DS = dy·s (L × N), BG = B·gᵀ (L × P).
  for (int i = tid; i < L * N; i += nt) {
    const int t = i / N, n = i % N;
    float xg = 0.f, ds = 0.f;
    for (int p = 0; p < P; p++) {
      xg += sx[t * o.P1 + p] * sg[p * o.N1 + n];
      ds += sdy[t * o.P1 + p] * ss[p * o.N1 + n];
    }
    XG[t * o.N1 + n] = xg;
    DS[t * o.N1 + n] = ds;
  }
  for (int i = tid; i < L * P; i += nt) {
    const int t = i / P, p = i % P;
    float bg = 0.f;
    for (int n = 0; n < N; n++) bg += sB[t * o.N1 + n] * sg[p * o.N1 + n];
    BG[t * o.P1 + p] = bg;
  }
  __syncthreads();  // g, s give way to M1, M2; sl is ready
  // M1, M2 (their lower triangles) a row t' per warp, τ across lanes; R's row sums by shuffles, column sums by
  // shared atomics.
  const int warps = nt >> 5;
  for (int tp = warp; tp < L; tp += warps) {
    float row = 0.f;
    for (int tau = lane; tau <= tp; tau += 32) {
      float cb = 0.f, w = 0.f;
      for (int n = 0; n < N; n++) cb += sC[tp * o.N1 + n] * sB[tau * o.N1 + n];
      for (int p = 0; p < P; p++) w += sdy[tp * o.P1 + p] * sx[tau * o.P1 + p];
      const float e = expf(sl[tp] - sl[tau]);
      M1[tp * o.L1 + tau] = e * cb;
      M2[tp * o.L1 + tau] = e * w;
      const float r = e * cb * w * sdt[tau];
      row += r;
      atomicAdd(&colR[tau], r);
    }
    row = warp_sum(row);
    if (lane == 0) rowR[tp] = row;
  }
  __syncthreads();
  const float lEnd = sl[L - 1];
  float dDlocal = 0.f;
  for (int i = tid; i < L * P; i += nt) {
    const int t = i / P, p = i % P;
    float r = expf(lEnd - sl[t]) * BG[t * o.P1 + p];
    for (int tp = t; tp < L; tp++) r += M1[tp * o.L1 + t] * sdy[tp * o.P1 + p];
    BG[t * o.P1 + p] = r;
    const float yv = sdy[t * o.P1 + p];
    dx[xAt(t, p)] = from_f32<T>(sdt[t] * r + Dh * yv);
    dDlocal += yv * sx[t * o.P1 + p];
  }
  for (int i = tid; i < L * N; i += nt) {
    const int t = i / N, n = i % N;
    float db = expf(lEnd - sl[t]) * XG[t * o.N1 + n], dc = expf(sl[t]) * DS[t * o.N1 + n];
    for (int tp = t; tp < L; tp++) db += M2[tp * o.L1 + t] * sC[tp * o.N1 + n];
    for (int tau = 0; tau <= t; tau++) dc += M2[t * o.L1 + tau] * sdt[tau] * sB[tau * o.N1 + n];
    atomicAdd(&dBacc[bcAt(t, n)], sdt[t] * db);
    atomicAdd(&dCacc[bcAt(t, n)], dc);
  }
  __syncthreads();  // r in BG
  for (int t = tid; t < L; t += nt) {
    float xr = 0.f, u = 0.f, v = 0.f;
    for (int p = 0; p < P; p++) xr += sx[t * o.P1 + p] * BG[t * o.P1 + p];
    for (int n = 0; n < N; n++) {
      u += sC[t * o.N1 + n] * DS[t * o.N1 + n];
      v += sB[t * o.N1 + n] * XG[t * o.N1 + n];
    }
    v *= expf(lEnd - sl[t]) * sdt[t];
    sv[t] = v;
    dl[t] = rowR[t] - colR[t] + expf(sl[t]) * u - v;
    ddt[dtAt(t)] = xr;  // A·q_t is added below
  }
  if (dD) dDlocal = block_sum(dDlocal);
  else __syncthreads();
  if (tid == 0) {
    float vs = 0.f;
    for (int t = 0; t < L; t++) vs += sv[t];
    dl[L - 1] += expf(lEnd) * gs + vs;
    float q = 0.f, dAloc = 0.f;
    for (int t = L - 1; t >= 0; t--) {
      q += dl[t];
      ddt[dtAt(t)] += Ah * q;
      dAloc += sdt[t] * q;
    }
    atomicAdd(&dA[hd.h], dAloc);
    if (dD) atomicAdd(&dD[hd.h], dDlocal);
  }
}

// ---- conv1d --------------------------------------------------------------------------------------------------

constexpr int kMaxConvWidth = 16;

template <typename T, typename W>
struct ConvView {
  const T *x, *state, *dy;
  const W *w, *bias;
  int len, C, K, past;
  bool silu;
  /** [state; x] of batch b at padded row q, channel c. */
  __device__ float padded(int b, int q, int c) const {
    if (q < past) return state ? ld(state, (size_t(b) * past + q) * C + c) : 0.f;
    return ld(x, (size_t(b) * len + q - past) * C + c);
  }
  /** The gradient of the pre-activation at (b, t, c). */
  __device__ float dpre(int b, int t, int c) const {
    float g = ld(dy, (size_t(b) * len + t) * C + c);
    if (silu) {
      float pre = bias ? ld(bias, c) : 0.f;
      for (int j = 0; j < K; j++) pre += ld(w, size_t(c) * K + j) * padded(b, t + j, c);
      g *= silu_grad(pre);
    }
    return g;
  }
};

/** dP[b, q, c] = Σ_j w[c, j]·dpre[b, q − j, c] (+ dStateOut on the last rows); one thread per padded element. */
template <typename T, typename W>
__global__ void conv_dx_kernel(T *__restrict__ dx, T *__restrict__ dState, const T *__restrict__ dStateOut,
                               ConvView<T, W> v, int batch) {
  const size_t rows = size_t(v.past) + v.len, n = size_t(batch) * rows * v.C;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % v.C);
    const int q = static_cast<int>((i / v.C) % rows);
    const int b = static_cast<int>(i / (size_t(v.C) * rows));
    float acc = q >= v.len && dStateOut ? ld(dStateOut, (size_t(b) * v.past + q - v.len) * v.C + c) : 0.f;
    for (int j = 0; j < v.K; j++) {
      const int t = q - j;
      if (t >= 0 && t < v.len) acc += ld(v.w, size_t(c) * v.K + j) * v.dpre(b, t, c);
    }
    if (q < v.past) {
      if (dState) dState[(size_t(b) * v.past + q) * v.C + c] = from_f32<T>(acc);
    } else {
      dx[(size_t(b) * v.len + q - v.past) * v.C + c] = from_f32<T>(acc);
    }
  }
}

/** Row splits of the dW pass: enough blocks to fill the GPU, at least 256 rows each. */
inline int conv_dw_splits(const Conv1dDims &d) {
  const int64_t rows = int64_t(d.batch) * d.len, blocks = ceil_div(d.channels, 32);
  const int64_t want = std::max<int64_t>(1, 512 / std::max<int64_t>(1, blocks));
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(want, rows / 256)));
}

/**
 * Partial dW[c, j] = Σ dpre·P[b, t + j, c] and dBias[c] = Σ dpre over split blockIdx.y's rows: a block of 256
 * threads covers 32 channels (the lane) × 8 row groups (the warp), summed through shared memory into
 * partial[split][c][0..K] (K: the bias).
 */
template <typename T, typename W>
__global__ void conv_dw_kernel(float *__restrict__ partial, ConvView<T, W> v, int batch, int chunk) {
  __shared__ float red[8][32][kMaxConvWidth + 1];
  const int lane = threadIdx.x & 31, group = threadIdx.x >> 5;
  const int c = blockIdx.x * 32 + lane;
  const int from = blockIdx.y * chunk, to = min(batch * v.len, from + chunk);
  float acc[kMaxConvWidth + 1];
  for (int j = 0; j <= kMaxConvWidth; j++) acc[j] = 0.f;
  if (c < v.C)
    for (int r = from + group; r < to; r += 8) {
      const int b = r / v.len, t = r % v.len;
      const float g = v.dpre(b, t, c);
      for (int j = 0; j < v.K; j++) acc[j] += g * v.padded(b, t + j, c);
      acc[kMaxConvWidth] += g;
    }
  for (int j = 0; j <= kMaxConvWidth; j++) red[group][lane][j] = acc[j];
  __syncthreads();
  if (group == 0 && c < v.C) {
    float *out = partial + (size_t(blockIdx.y) * v.C + c) * (v.K + 1);
    for (int j = 0; j <= v.K; j++) {
      const int at = j == v.K ? kMaxConvWidth : j;
      float s = 0.f;
      for (int y = 0; y < 8; y++) s += red[y][lane][at];
      out[j] = s;
    }
  }
}

/** dW and dBias from the splits' partial sums, in split order (the result does not depend on scheduling). */
__global__ void conv_dw_sum_kernel(float *__restrict__ dW, float *__restrict__ dBias, const float *__restrict__ partial,
                                   int C, int K, int splits) {
  const int n = C * (K + 1);
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    float s = 0.f;
    for (int sp = 0; sp < splits; sp++) s += partial[size_t(sp) * n + i];
    const int c = i / (K + 1), j = i % (K + 1);
    if (j < K) dW[size_t(c) * K + j] = s;
    else if (dBias) dBias[c] = s;
  }
}

// ---- attention -----------------------------------------------------------------------------------------------
//
// FlashAttention-2's backward order in two tiled kernels, f32 math on any float type and head dims ≤ 256 (no tensor
// cores): the query side (each row's log-sum-exp, δ = dO·O and dq) then the key side (dk, dv). A block's warps own
// one row each, rows of one batch and kv head that read the same rows of the other side; those stream through
// shared memory kTile at a time, one per lane, so a lane computes whole dot products (no shuffle per key) and each
// tile is read by every row of the block.

constexpr int kMaxHeadDim = 256;  // accumulator values per lane: P = 1, 2, 4 or 8 (head dims up to 32·P), a kernel each
constexpr int kAttnWarps = 8;           // rows per block
constexpr int kTile = 32;               // rows of the streamed side per tile: one per lane

struct AttnArgs {
  AttnGradDims d;
  const float *mask;
  const int *ranges;   // per query: its keys [lo, hi)
  const int *qranges;  // per key: the queries [lo, hi) that see it
  float *lse, *delta;
  int group;  // query heads per kv head
};

/** Row stride of a tile in shared memory: odd, so that 32 lanes reading one column of 32 rows hit 32 banks. */
__host__ __device__ constexpr int tile_stride(int n) { return n | 1; }

/** Rows [r0, r0 + kTile) of a sequence (rows rowStride apart, n values each) into a tile; rows from `end` on as 0. */
template <typename T>
__device__ void load_tile(float *tile, const T *src, size_t rowStride, int r0, int end, int n) {
  const int sn = tile_stride(n);
  for (int idx = threadIdx.x; idx < kTile * n; idx += blockDim.x) {
    const int r = idx / n, e = idx % n;
    tile[r * sn + e] = r0 + r < end ? ld(src, size_t(r0 + r) * rowStride + e) : 0.f;
  }
}

/** Σ_e row[e]·tile[lane][e]: the warp's row (broadcast reads) with this lane's tile row. */
__device__ __forceinline__ float dot_tile(const float *row, const float *tile, int n) {
  const float *t = tile + (threadIdx.x & 31) * tile_stride(n);
  float s = 0.f;
  for (int e = 0; e < n; e++) s += row[e] * t[e];
  return s;
}

/** acc[t] += Σ_c w[c]·tile[c][lane + 32t]: the warp's per-tile-row weights times the tile. */
template <int P>
__device__ __forceinline__ void accumulate_tile(float (&acc)[P], const float *w, const float *tile, int n) {
  const int lane = threadIdx.x & 31, sn = tile_stride(n);
  for (int c = 0; c < kTile; c++) {
    const float wc = w[c];
    if (wc == 0.f) continue;  // the same for every lane: masked and out-of-range rows cost nothing
#pragma unroll
    for (int t = 0; t < P; t++)
      if (lane + 32 * t < n) acc[t] += wc * tile[c * sn + lane + 32 * t];
  }
}

/**
 * [lo, hi) over the block's W warps (lane 0 of each gives its warp's range; an empty one gives lo ≥ hi and is
 * left out).
 */
template <int W = kAttnWarps>
__device__ void block_range(int lo, int hi, int &first, int &last) {
  __shared__ int wlo[W], whi[W];
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) {
    wlo[warp] = lo < hi ? lo : INT_MAX;
    whi[warp] = lo < hi ? hi : 0;
  }
  __syncthreads();
  first = INT_MAX;
  last = 0;
  for (int w = 0; w < W; w++) {
    first = min(first, wlo[w]);
    last = max(last, whi[w]);
  }
}

/** Shared floats of attn_query_kernel: K and V tiles, then per warp its q and dO rows and dS over a tile. */
size_t attn_query_smem(const AttnGradDims &d) {
  return sizeof(float) * (kTile * (tile_stride(d.d) + tile_stride(d.dv)) + kAttnWarps * (d.d + d.dv + kTile));
}
/** Shared floats of attn_key_kernel: Q and dO tiles with their rows' lse and δ, then per warp k, v, P and dS. */
size_t attn_key_smem(const AttnGradDims &d) {
  return sizeof(float) * (kTile * (tile_stride(d.d) + tile_stride(d.dv) + 2) + kAttnWarps * (d.d + d.dv + 2 * kTile));
}

/**
 * Query side. A block's rows are consecutive (query i, head-in-group) pairs of one batch b and kv head kh. Pass 1
 * streams the union of their key ranges for each row's log-sum-exp (a running max and sum per lane, merged at the
 * end); pass 2 streams it again for dq = scale·Σ_j P_j·(dP_j − δ)·k_j. Writes lse and δ for the key side.
 */
template <typename T, int P>
__global__ void __launch_bounds__(kAttnWarps * 32)
    attn_query_kernel(AttnArgs a, T *__restrict__ dq, const T *__restrict__ q, const T *__restrict__ k,
                      const T *__restrict__ v, const T *__restrict__ out, const T *__restrict__ dOut) {
  const AttnGradDims &d = a.d;
  extern __shared__ float sh[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int blocksPerHead = (d.sq * a.group + kAttnWarps - 1) / kAttnWarps;
  const int b = blockIdx.x / blocksPerHead / d.hkv, kh = blockIdx.x / blocksPerHead % d.hkv;
  const int pair = blockIdx.x % blocksPerHead * kAttnWarps + warp;
  const bool active = pair < d.sq * a.group;
  const int i = pair / a.group, h = kh * a.group + pair % a.group;
  const size_t row = (size_t(b) * d.sq + i) * d.hq + h;
  float *kt = sh, *vt = kt + kTile * tile_stride(d.d);
  float *qrow = vt + kTile * tile_stride(d.dv) + warp * (d.d + d.dv + kTile), *grow = qrow + d.d, *w = grow + d.dv;
  const int lo = active ? a.ranges[2 * i] : 0, hi = active ? a.ranges[2 * i + 1] : 0;
  int j0, j1;
  block_range(lo, hi, j0, j1);
  const T *kSeq = k + size_t(b) * d.skv * d.hkv * d.d + size_t(kh) * d.d;
  const T *vSeq = v + size_t(b) * d.skv * d.hkv * d.dv + size_t(kh) * d.dv;
  const size_t kStride = size_t(d.hkv) * d.d, vStride = size_t(d.hkv) * d.dv;
  float delta = 0.f;
  if (active) {
    for (int e = lane; e < d.d; e += 32) qrow[e] = ld(q, row * d.d + e);
    for (int e = lane; e < d.dv; e += 32) {
      grow[e] = ld(dOut, row * d.dv + e);
      delta += grow[e] * ld(out, row * d.dv + e);
    }
  }
  delta = warp_sum(delta);
  __syncwarp();
  const float *mrow = a.mask && active ? a.mask + (size_t(d.maskBatch > 1 ? b : 0) * d.sq + i) * d.kvLength : nullptr;
  auto logit = [&](int j) {  // this lane's key of the tile; −∞ outside the row's range
    if (j < lo || j >= hi) return -INFINITY;
    const float s = dot_tile(qrow, kt, d.d) * d.scale;
    return mrow ? s + mrow[j] : s;
  };

  float m = -INFINITY, l = 0.f;
  for (int t0 = j0; t0 < j1; t0 += kTile) {
    __syncthreads();  // every warp is done with the previous tile
    load_tile(kt, kSeq, kStride, t0, j1, d.d);
    __syncthreads();
    const float s = logit(t0 + lane);
    if (s == -INFINITY) continue;
    if (s > m) {
      l = l * expf(m - s) + 1.f;
      m = s;
    } else {
      l += expf(s - m);
    }
  }
  const float mMax = warp_max(m);
  const float lSum = warp_sum(m == -INFINITY ? 0.f : l * expf(m - mMax));
  const float lse = mMax == -INFINITY ? -INFINITY : mMax + logf(lSum);

  float acc[P];
#pragma unroll
  for (int t = 0; t < P; t++) acc[t] = 0.f;
  for (int t0 = j0; t0 < j1; t0 += kTile) {
    __syncthreads();
    load_tile(kt, kSeq, kStride, t0, j1, d.d);
    load_tile(vt, vSeq, vStride, t0, j1, d.dv);
    __syncthreads();
    const float s = logit(t0 + lane);
    w[lane] = s == -INFINITY ? 0.f : expf(s - lse) * (dot_tile(grow, vt, d.dv) - delta);
    __syncwarp();
    accumulate_tile(acc, w, kt, d.d);
    __syncwarp();  // w is rewritten by the next tile
  }
  if (!active) return;
  if (lane == 0) {
    a.lse[row] = lse;
    a.delta[row] = delta;
  }
#pragma unroll
  for (int t = 0; t < P; t++)
    if (lane + 32 * t < d.d) dq[row * d.d + lane + 32 * t] = from_f32<T>(acc[t] * d.scale);
}

/**
 * Key side. A block's rows are consecutive keys j of one batch and kv head; for each query head of the group, the
 * union of the queries that see them streams through: dv = Σ_i P_i·dO_i and dk = scale·Σ_i P_i·(dP_i − δ_i)·q_i.
 */
template <typename T, int P>
__global__ void __launch_bounds__(kAttnWarps * 32)
    attn_key_kernel(AttnArgs a, T *__restrict__ dk, T *__restrict__ dv, const T *__restrict__ q,
                    const T *__restrict__ k, const T *__restrict__ v, const T *__restrict__ dOut) {
  const AttnGradDims &d = a.d;
  extern __shared__ float sh[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int blocksPerHead = (d.skv + kAttnWarps - 1) / kAttnWarps;
  const int b = blockIdx.x / blocksPerHead / d.hkv, kh = blockIdx.x / blocksPerHead % d.hkv;
  const int j = blockIdx.x % blocksPerHead * kAttnWarps + warp;
  const bool active = j < d.skv;
  const size_t krow = (size_t(b) * d.skv + j) * d.hkv + kh;
  float *qt = sh, *gt = qt + kTile * tile_stride(d.d), *tLse = gt + kTile * tile_stride(d.dv), *tDelta = tLse + kTile;
  float *kr = tDelta + kTile + warp * (d.d + d.dv + 2 * kTile), *vr = kr + d.d, *pw = vr + d.dv, *dsw = pw + kTile;
  const int lo = active ? a.qranges[2 * j] : 0, hi = active ? a.qranges[2 * j + 1] : 0;
  int i0, i1;
  block_range(lo, hi, i0, i1);
  if (active) {
    for (int e = lane; e < d.d; e += 32) kr[e] = ld(k, krow * d.d + e);
    for (int e = lane; e < d.dv; e += 32) vr[e] = ld(v, krow * d.dv + e);
  }
  __syncwarp();
  const float *mcol = a.mask && active ? a.mask + size_t(d.maskBatch > 1 ? b : 0) * d.sq * d.kvLength + j : nullptr;
  float gk[P], gv[P];
#pragma unroll
  for (int t = 0; t < P; t++) gk[t] = gv[t] = 0.f;
  for (int h = kh * a.group; h < (kh + 1) * a.group; h++) {
    const T *qSeq = q + size_t(b) * d.sq * d.hq * d.d + size_t(h) * d.d;
    const T *gSeq = dOut + size_t(b) * d.sq * d.hq * d.dv + size_t(h) * d.dv;
    for (int t0 = i0; t0 < i1; t0 += kTile) {
      __syncthreads();
      load_tile(qt, qSeq, size_t(d.hq) * d.d, t0, i1, d.d);
      load_tile(gt, gSeq, size_t(d.hq) * d.dv, t0, i1, d.dv);
      for (int c = threadIdx.x; c < kTile; c += blockDim.x) {
        const size_t row = (size_t(b) * d.sq + t0 + c) * d.hq + h;
        tLse[c] = t0 + c < i1 ? a.lse[row] : -INFINITY;
        tDelta[c] = t0 + c < i1 ? a.delta[row] : 0.f;
      }
      __syncthreads();
      const int i = t0 + lane;
      float p = 0.f, ds = 0.f;
      if (i >= lo && i < hi && tLse[lane] != -INFINITY) {
        float s = dot_tile(kr, qt, d.d) * d.scale;
        if (mcol) s += mcol[size_t(i) * d.kvLength];
        p = expf(s - tLse[lane]);
        ds = p * (dot_tile(vr, gt, d.dv) - tDelta[lane]);
      }
      pw[lane] = p;
      dsw[lane] = ds;
      __syncwarp();
      accumulate_tile(gv, pw, gt, d.dv);
      accumulate_tile(gk, dsw, qt, d.d);
      __syncwarp();
    }
  }
  if (!active) return;
#pragma unroll
  for (int t = 0; t < P; t++) {
    if (lane + 32 * t < d.d) dk[krow * d.d + lane + 32 * t] = from_f32<T>(gk[t] * d.scale);
    if (lane + 32 * t < d.dv) dv[krow * d.dv + lane + 32 * t] = from_f32<T>(gv[t]);
  }
}

// ---- attention on tensor cores ----------------------------------------------------------------------------
//
// The same two kernels for bf16 with d == dv ∈ {32, 48, 64} and no mask (the tiny models' vision frames, text
// self- and cross-attention), as FlashAttention-2's backward: each warp owns 16 rows whose operands stay in
// registers as mma.sync m16n8k16 fragments, and tiles of 64 rows of the other side stream through shared memory.
// Query side: S = Q·Kᵀ twice (the log-sum-exp, then P), dP = dO·Vᵀ, dS = P∘(dP − δ), dQ += dS·K. Key side, from
// the keys' view: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, dV += Pᵀ·dO, dK += dSᵀ·Q. P and dS go into their products as two bf16
// parts each (hi + lo: one part alone, as FlashAttention rounds them, moved dq by 0.4% of its largest entry on an
// H100); every sum is f32. The score accumulator's layout is the next product's A operand, so
// P and dS never leave registers.

constexpr int kMmaWarps = 4;
constexpr int kMmaRows = 16 * kMmaWarps;  // rows per block, and rows per streamed tile

/** The first and last row a block's 16-row warps hold, combined over the block: [first, last). */
__device__ void mma_block_range(const int (&lo)[2], const int (&hi)[2], int &first, int &last) {
  int l = INT_MAX, h = 0;
  for (int r = 0; r < 2; r++)
    if (lo[r] < hi[r]) {
      l = min(l, lo[r]);
      h = max(h, hi[r]);
    }
  for (int o = 16; o; o >>= 1) {
    l = min(l, __shfl_xor_sync(0xffffffffu, l, o));
    h = max(h, __shfl_xor_sync(0xffffffffu, h, o));
  }
  block_range<kMmaWarps>(l, h, first, last);
}

/** 64 rows of a bf16 sequence into a tile (row stride LDS): row r0 + r from `at(r0 + r)`, zero from `end` on. */
template <int D, typename At>
__device__ void mma_load_rows(__nv_bfloat16 *tile, int r0, int end, At at) {
  constexpr int CH = D / 8, LDS = D + 8;
  for (int c = threadIdx.x; c < kMmaRows * CH; c += kMmaWarps * 32) {
    const int r = c / CH, col = (c % CH) * 8, row = r0 + r;
    cp_async16(tile + r * LDS + col, row < end ? at(row) + col : at(r0), row < end ? 16 : 0);
  }
}

/** A operand of rows [16w, 16w + 16) of a tile, 16 columns at a time. */
template <int D>
__device__ void mma_a_fragments(uint32_t (&f)[D / 16][4], const __nv_bfloat16 *tile) {
  constexpr int LDS = D + 8;
  const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const __nv_bfloat16 *row = tile + ((threadIdx.x >> 5) * 16 + g) * LDS + 2 * t4;
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    f[kk][0] = *reinterpret_cast<const uint32_t *>(row + kk * 16);
    f[kk][1] = *reinterpret_cast<const uint32_t *>(row + 8 * LDS + kk * 16);
    f[kk][2] = *reinterpret_cast<const uint32_t *>(row + kk * 16 + 8);
    f[kk][3] = *reinterpret_cast<const uint32_t *>(row + 8 * LDS + kk * 16 + 8);
  }
}

/** Writes the warp's 16 rows of acc·scale as bf16: row r's values to `at(r)` (null: past the end). */
template <int D, typename At>
__device__ void mma_store_rows(const float (&acc)[D / 8][4], float scale, At at) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3, r0 = (threadIdx.x >> 5) * 16 + g;
#pragma unroll
  for (int h = 0; h < 2; h++) {
    __nv_bfloat16 *row = at(r0 + 8 * h);
    if (!row) continue;
#pragma unroll
    for (int n = 0; n < D / 8; n++)
      *reinterpret_cast<__nv_bfloat162 *>(row + 8 * n + 2 * t4) =
          __floats2bfloat162_rn(acc[n][2 * h] * scale, acc[n][2 * h + 1] * scale);
  }
}

template <int D>
constexpr size_t attn_mma_smem() {
  return sizeof(__nv_bfloat16) * 4 * kMmaRows * (D + 8);
}

/**
 * Query side: a block holds 64 consecutive (query, head-in-group) pairs of one batch and kv head, as
 * attn_query_kernel's rows; the union of their key ranges streams through twice (log-sum-exp, then dq).
 */
template <int D>
__global__ void __launch_bounds__(kMmaWarps * 32)
    attn_query_mma(AttnArgs a, __nv_bfloat16 *__restrict__ dq, const __nv_bfloat16 *__restrict__ q,
                   const __nv_bfloat16 *__restrict__ k, const __nv_bfloat16 *__restrict__ v,
                   const __nv_bfloat16 *__restrict__ out, const __nv_bfloat16 *__restrict__ dOut) {
  constexpr int LDS = D + 8, NS = kMmaRows / 8;
  const AttnGradDims &d = a.d;
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16 *sQ = reinterpret_cast<__nv_bfloat16 *>(smem), *sG = sQ + kMmaRows * LDS;
  __nv_bfloat16 *sK = sG + kMmaRows * LDS, *sV = sK + kMmaRows * LDS;
  __shared__ float sDelta[kMmaRows];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int pairs = d.sq * a.group, tiles = (pairs + kMmaRows - 1) / kMmaRows;
  const int b = blockIdx.x / tiles / d.hkv, kh = blockIdx.x / tiles % d.hkv, p0 = blockIdx.x % tiles * kMmaRows;
  auto rowOf = [&](int p) { return (size_t(b) * d.sq + p / a.group) * d.hq + kh * a.group + p % a.group; };
  mma_load_rows<D>(sQ, p0, pairs, [&](int p) { return q + rowOf(p) * D; });
  mma_load_rows<D>(sG, p0, pairs, [&](int p) { return dOut + rowOf(p) * D; });
  cp_async_commit();
  for (int r = warp; r < kMmaRows; r += kMmaWarps) {  // δ = dO·O, a warp per row
    float s = 0.f;
    if (p0 + r < pairs)
      for (int e = lane; e < D; e += 32) s += ld(dOut, rowOf(p0 + r) * D + e) * ld(out, rowOf(p0 + r) * D + e);
    s = warp_sum(s);
    if (lane == 0) sDelta[r] = s;
  }
  int lo[2], hi[2];
  for (int h = 0; h < 2; h++) {
    const int p = p0 + warp * 16 + g + 8 * h;
    lo[h] = p < pairs ? a.ranges[2 * (p / a.group)] : 0;
    hi[h] = p < pairs ? a.ranges[2 * (p / a.group) + 1] : 0;
  }
  int j0, j1;
  mma_block_range(lo, hi, j0, j1);
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qa[D / 16][4], ga[D / 16][4];
  mma_a_fragments<D>(qa, sQ);
  mma_a_fragments<D>(ga, sG);
  const float delta[2] = {sDelta[warp * 16 + g], sDelta[warp * 16 + g + 8]};
  // Scaled scores of a tile, −∞ outside each row's range.
  auto scores = [&](float (&s)[NS][4], int t0) {
    mma_scores<D, kMmaRows>(s, qa, sK);
#pragma unroll
    for (int n = 0; n < NS; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int h = e >> 1, j = t0 + 8 * n + 2 * t4 + (e & 1);
        s[n][e] = j >= lo[h] && j < hi[h] ? s[n][e] * d.scale : -INFINITY;
      }
  };
  auto loadKeys = [&](__nv_bfloat16 *tile, const __nv_bfloat16 *base, int t0) {
    const size_t stride = size_t(d.hkv) * D;
    mma_load_rows<D>(tile, t0, j1, [&](int j) { return base + (size_t(b) * d.skv * d.hkv + kh) * D + j * stride; });
  };

  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  for (int t0 = j0; t0 < j1; t0 += kMmaRows) {
    __syncthreads();  // every warp is done with the previous tile
    loadKeys(sK, k, t0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    float s[NS][4];
    scores(s, t0);
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < NS; n++) mx = fmaxf(mx, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      if (mx == -INFINITY) continue;
      const float mnew = fmaxf(m[h], mx);
      l[h] *= expf(m[h] - mnew);
#pragma unroll
      for (int n = 0; n < NS; n++) l[h] += expf(s[n][2 * h] - mnew) + expf(s[n][2 * h + 1] - mnew);
      m[h] = mnew;
    }
  }
  float lse[2];
#pragma unroll
  for (int h = 0; h < 2; h++) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    lse[h] = m[h] == -INFINITY ? -INFINITY : m[h] + logf(l[h]);
  }

  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  for (int t0 = j0; t0 < j1; t0 += kMmaRows) {
    __syncthreads();
    loadKeys(sK, k, t0);
    loadKeys(sV, v, t0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    float s[NS][4], dp[NS][4];
    scores(s, t0);
    mma_scores<D, kMmaRows>(dp, ga, sV);
#pragma unroll
    for (int n = 0; n < NS; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int h = e >> 1;
        const float p = s[n][e] == -INFINITY ? 0.f : expf(s[n][e] - lse[h]);
        s[n][e] = p * (dp[n][e] - delta[h]);  // dS
      }
    mma_weights<D, kMmaRows, true>(acc, s, sK);
  }
  const int r0 = warp * 16 + g;
  if (t4 == 0)
    for (int h = 0; h < 2; h++)
      if (p0 + r0 + 8 * h < pairs) {
        a.lse[rowOf(p0 + r0 + 8 * h)] = lse[h];
        a.delta[rowOf(p0 + r0 + 8 * h)] = delta[h];
      }
  mma_store_rows<D>(acc, d.scale, [&](int r) { return p0 + r < pairs ? dq + rowOf(p0 + r) * D : nullptr; });
}

/**
 * Key side: a block holds 64 keys of one batch and kv head; for each query head of the group, the union of
 * the queries that see them streams through with their log-sum-exp and δ.
 */
template <int D>
__global__ void __launch_bounds__(kMmaWarps * 32)
    attn_key_mma(AttnArgs a, __nv_bfloat16 *__restrict__ dk, __nv_bfloat16 *__restrict__ dv,
                 const __nv_bfloat16 *__restrict__ q, const __nv_bfloat16 *__restrict__ k,
                 const __nv_bfloat16 *__restrict__ v, const __nv_bfloat16 *__restrict__ dOut) {
  constexpr int LDS = D + 8, NS = kMmaRows / 8;
  const AttnGradDims &d = a.d;
  extern __shared__ __align__(16) unsigned char smem[];
  __nv_bfloat16 *sK = reinterpret_cast<__nv_bfloat16 *>(smem), *sV = sK + kMmaRows * LDS;
  __nv_bfloat16 *sQ = sV + kMmaRows * LDS, *sG = sQ + kMmaRows * LDS;
  __shared__ float sLse[kMmaRows], sDelta[kMmaRows];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int tiles = (d.skv + kMmaRows - 1) / kMmaRows;
  const int b = blockIdx.x / tiles / d.hkv, kh = blockIdx.x / tiles % d.hkv, j0 = blockIdx.x % tiles * kMmaRows;
  auto keyRow = [&](int j) { return (size_t(b) * d.skv + j) * d.hkv + kh; };
  mma_load_rows<D>(sK, j0, d.skv, [&](int j) { return k + keyRow(j) * D; });
  mma_load_rows<D>(sV, j0, d.skv, [&](int j) { return v + keyRow(j) * D; });
  cp_async_commit();
  int lo[2], hi[2];
  for (int h = 0; h < 2; h++) {
    const int j = j0 + warp * 16 + g + 8 * h;
    lo[h] = j < d.skv ? a.qranges[2 * j] : 0;
    hi[h] = j < d.skv ? a.qranges[2 * j + 1] : 0;
  }
  int i0, i1;
  mma_block_range(lo, hi, i0, i1);
  cp_async_wait<0>();
  __syncthreads();
  uint32_t ka[D / 16][4], va[D / 16][4];
  mma_a_fragments<D>(ka, sK);
  mma_a_fragments<D>(va, sV);
  float gk[D / 8][4], gv[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) gk[n][0] = gk[n][1] = gk[n][2] = gk[n][3] = gv[n][0] = gv[n][1] = gv[n][2] =
      gv[n][3] = 0.f;
  for (int h = kh * a.group; h < (kh + 1) * a.group; h++) {
    auto rowOf = [&](int i) { return (size_t(b) * d.sq + i) * d.hq + h; };
    for (int t0 = i0; t0 < i1; t0 += kMmaRows) {
      __syncthreads();  // every warp is done with the previous tile
      mma_load_rows<D>(sQ, t0, i1, [&](int i) { return q + rowOf(i) * D; });
      mma_load_rows<D>(sG, t0, i1, [&](int i) { return dOut + rowOf(i) * D; });
      cp_async_commit();
      for (int c = threadIdx.x; c < kMmaRows; c += kMmaWarps * 32) {
        sLse[c] = t0 + c < i1 ? a.lse[rowOf(t0 + c)] : -INFINITY;
        sDelta[c] = t0 + c < i1 ? a.delta[rowOf(t0 + c)] : 0.f;
      }
      cp_async_wait<0>();
      __syncthreads();
      float s[NS][4], dp[NS][4];
      mma_scores<D, kMmaRows>(s, ka, sQ);  // Sᵀ: the warp's 16 keys against the tile's 64 queries
      mma_scores<D, kMmaRows>(dp, va, sG);
#pragma unroll
      for (int n = 0; n < NS; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int r = e >> 1, c = 8 * n + 2 * t4 + (e & 1), i = t0 + c;
          const float p = i >= lo[r] && i < hi[r] && sLse[c] != -INFINITY ? expf(s[n][e] * d.scale - sLse[c]) : 0.f;
          s[n][e] = p;
          dp[n][e] = p * (dp[n][e] - sDelta[c]);  // dSᵀ
        }
      mma_weights<D, kMmaRows, true>(gv, s, sG);
      mma_weights<D, kMmaRows, true>(gk, dp, sQ);
    }
  }
  mma_store_rows<D>(gk, d.scale, [&](int r) { return j0 + r < d.skv ? dk + keyRow(j0 + r) * D : nullptr; });
  mma_store_rows<D>(gv, 1.f, [&](int r) { return j0 + r < d.skv ? dv + keyRow(j0 + r) * D : nullptr; });
}

template <int D>
void launch_attention_backward_mma(const AttnArgs &a, void *dq, void *dk, void *dv, const void *dOut, const void *q,
                                   const void *k, const void *v, const void *out, cudaStream_t s) {
  using B = __nv_bfloat16;
  const AttnGradDims &d = a.d;
  const size_t heads = size_t(d.batch) * d.hkv;
  const size_t qBlocks = heads * ceil_div(size_t(d.sq) * a.group, size_t(kMmaRows));
  const size_t kBlocks = heads * ceil_div(size_t(d.skv), size_t(kMmaRows));
  LS_REQUIRE(qBlocks < (size_t(1) << 31) && kBlocks < (size_t(1) << 31), "attention_backward: too many rows");
  constexpr size_t smem = attn_mma_smem<D>();
  if (qBlocks) {
    allow_smem<&attn_query_mma<D>>(smem);
    attn_query_mma<D><<<static_cast<unsigned>(qBlocks), kMmaWarps * 32, smem, s>>>(
        a, static_cast<B *>(dq), static_cast<const B *>(q), static_cast<const B *>(k), static_cast<const B *>(v),
        static_cast<const B *>(out), static_cast<const B *>(dOut));
    LS_CHECK_LAUNCH();
  }
  if (kBlocks) {
    allow_smem<&attn_key_mma<D>>(smem);
    attn_key_mma<D><<<static_cast<unsigned>(kBlocks), kMmaWarps * 32, smem, s>>>(
        a, static_cast<B *>(dk), static_cast<B *>(dv), static_cast<const B *>(q), static_cast<const B *>(k),
        static_cast<const B *>(v), static_cast<const B *>(dOut));
    LS_CHECK_LAUNCH();
  }
}

/**
 * Whether the tensor-core kernels take a call: bf16, d == dv ∈ {32, 48, 64}, no mask, 16-byte aligned rows.
 * LONGSHOT_ATTENTION_GRAD_MMA=0 turns them off (an A/B against the f32 kernels above).
 */
bool attention_backward_mma(const AttnGradDims &d, ET et, std::initializer_list<const void *> ptrs) {
  static const bool off = [] {
    const char *e = std::getenv("LONGSHOT_ATTENTION_GRAD_MMA");
    return e && std::string(e) == "0";
  }();
  if (off || et != ET::BF16 || d.maskBatch || d.d != d.dv || !(d.d == 32 || d.d == 48 || d.d == 64)) return false;
  for (const void *p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) & 15) return false;
  return true;
}

// ---- norms -----------------------------------------------------------------------------------------------------

// Norm backwards: a warp per row (or group of a row) at a time, lanes striding it; the weight (and bias)
// gradients are summed per block in shared memory over its rows, then added to the global sums once per block.
// (A block per row with an atomic per element into dW took 665 µs a call for the tiny Vamba's vision tower,
// 131,072 rows of 128, on an H100: every row's atomics met at the same 128 addresses.)
#ifndef LS_NORM_BLOCKS
#define LS_NORM_BLOCKS 1024  // 8 blocks of 256 threads per SM of an H100: full occupancy
#endif
constexpr int kNormBlocks = LS_NORM_BLOCKS;  // blocks at most; their warps take the rows in turn

/** Zeroes the block's partial sums (`n` floats of shared memory) and returns them. */
__device__ float *norm_partials(int64_t n) {
  extern __shared__ float part[];
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) part[i] = 0.f;
  __syncthreads();
  return part;
}

/** Adds the block's partial sums into `sum` (n floats), if any. */
__device__ void norm_flush(float *sum, const float *part, int64_t n) {
  __syncthreads();
  if (sum)
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) atomicAdd(&sum[i], part[i]);
}

template <typename T, typename W>
__global__ void rms_backward_kernel(T *__restrict__ dx, float *__restrict__ dW, T *__restrict__ dGate,
                                    const T *__restrict__ dy, const T *__restrict__ x, const W *__restrict__ w,
                                    const T *__restrict__ gate, const T *__restrict__ dSum, int64_t rows,
                                    int64_t dim, int64_t G, float eps, bool normBeforeGate) {
  float *part = norm_partials(dim);
  const int64_t groups = dim / G, segments = rows * groups, warps = blockDim.x >> 5;
  const int lane = threadIdx.x & 31;
  const bool gateFirst = gate && !normBeforeGate, gateAfter = gate && normBeforeGate;
  for (int64_t seg = blockIdx.x * warps + (threadIdx.x >> 5); seg < segments; seg += gridDim.x * warps) {
    const int64_t g0 = (seg % groups) * G;
    const size_t base = size_t(seg / groups) * dim + g0;
    auto u_at = [&](int64_t i) { return gateFirst ? ld(x, base + i) * siluf_(ld(gate, base + i)) : ld(x, base + i); };
    auto dn_at = [&](int64_t i) {
      return ld(dy, base + i) * (w ? ld(w, g0 + i) : 1.f) * (gateAfter ? siluf_(ld(gate, base + i)) : 1.f);
    };
    float ss = 0.f, dot = 0.f;
    for (int64_t i = lane; i < G; i += 32) {
      const float u = u_at(i);
      ss += u * u;
      dot += dn_at(i) * u;
    }
    ss = warp_sum(ss);
    dot = warp_sum(dot);
    const float rs = rsqrtf(ss / G + eps), kk = rs * rs * dot / G;
    for (int64_t i = lane; i < G; i += 32) {
      const float u = u_at(i), dyi = ld(dy, base + i);
      const float du = rs * (dn_at(i) - u * kk);
      float gx = du;
      if (gateFirst) {
        const float gi = ld(gate, base + i);
        gx = du * siluf_(gi);
        dGate[base + i] = from_f32<T>(du * ld(x, base + i) * silu_grad(gi));
      } else if (gateAfter) {
        const float gi = ld(gate, base + i);
        dGate[base + i] = from_f32<T>(dyi * u * rs * (w ? ld(w, g0 + i) : 1.f) * silu_grad(gi));
      }
      if (dSum) gx += ld(dSum, base + i);
      dx[base + i] = from_f32<T>(gx);
      if (dW) atomicAdd(&part[g0 + i], dyi * u * rs * (gateAfter ? siluf_(ld(gate, base + i)) : 1.f));
    }
  }
  norm_flush(dW, part, dim);
}

/** Partial sums: dW in part[0, dim), dB in part[dim, 2·dim). */
template <typename T, typename W>
__global__ void ln_backward_kernel(T *__restrict__ dx, float *__restrict__ dW, float *__restrict__ dB,
                                   const T *__restrict__ dy, const T *__restrict__ x, const W *__restrict__ w,
                                   const T *__restrict__ dSum, int64_t rows, int64_t dim, float eps) {
  float *part = norm_partials(2 * dim);
  const int64_t warps = blockDim.x >> 5;
  const int lane = threadIdx.x & 31;
  for (int64_t r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {
    const size_t base = size_t(r) * dim;
    float sum = 0.f;
    for (int64_t i = lane; i < dim; i += 32) sum += ld(x, base + i);
    const float mean = warp_sum(sum) / dim;
    float var = 0.f;
    for (int64_t i = lane; i < dim; i += 32) {
      const float c = ld(x, base + i) - mean;
      var += c * c;
    }
    const float rs = rsqrtf(warp_sum(var) / dim + eps);
    float m1 = 0.f, m2 = 0.f;
    for (int64_t i = lane; i < dim; i += 32) {
      const float g = ld(dy, base + i) * (w ? ld(w, i) : 1.f), xh = (ld(x, base + i) - mean) * rs;
      m1 += g;
      m2 += g * xh;
    }
    m1 = warp_sum(m1) / dim;
    m2 = warp_sum(m2) / dim;
    for (int64_t i = lane; i < dim; i += 32) {
      const float dyi = ld(dy, base + i), g = dyi * (w ? ld(w, i) : 1.f), xh = (ld(x, base + i) - mean) * rs;
      dx[base + i] = from_f32<T>(rs * (g - m1 - xh * m2) + (dSum ? ld(dSum, base + i) : 0.f));
      if (dW) atomicAdd(&part[i], dyi * xh);
      if (dB) atomicAdd(&part[dim + i], dyi);
    }
  }
  norm_flush(dW, part, dim);
  norm_flush(dB, part + dim, dim);
}

// ---- embedding, losses, AdamW ---------------------------------------------------------------------------------

template <typename T>
__global__ void embedding_backward_kernel(float *__restrict__ dTable, const T *__restrict__ dOut,
                                          const int32_t *__restrict__ ids, size_t n, int64_t vocab, int64_t dim) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const int32_t id = ids[i / dim];
    if (id >= 0 && id < vocab) atomicAdd(&dTable[size_t(id) * dim + i % dim], ld(dOut, i));
  }
}

/** counter[0] = number of rows whose target ≠ ignore (as a float), one block. */
__global__ void count_targets_kernel(float *counter, const int32_t *targets, int64_t rows, int ignore) {
  float n = 0.f;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) n += targets[r] != ignore ? 1.f : 0.f;
  n = block_sum(n);
  if (threadIdx.x == 0) counter[0] = n;
}

/** One block per row: loss += (lse − logit[target]) / count; dLogits = gradScale·(softmax − onehot) / count. */
template <typename T>
__global__ void cross_entropy_kernel(float *__restrict__ loss, T *__restrict__ dl, const T *__restrict__ logits,
                                     const int32_t *__restrict__ targets, const float *__restrict__ counter,
                                     int64_t vocab, int ignore, float gradScale) {
  const size_t base = size_t(blockIdx.x) * vocab;
  const int32_t tg = targets[blockIdx.x];
  if (tg == ignore) {
    if (dl)
      for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) dl[base + j] = from_f32<T>(0.f);
    return;
  }
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) m = fmaxf(m, ld(logits, base + j));
  m = block_max(m);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) s += expf(ld(logits, base + j) - m);
  const float lse = m + logf(block_sum(s));
  const float count = counter[0];
  const bool valid = tg >= 0 && tg < vocab;
  if (threadIdx.x == 0) atomicAdd(loss, valid ? (lse - ld(logits, base + tg)) / count : NAN);
  if (dl) {
    const float scale = gradScale / count;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
      dl[base + j] = from_f32<T>(expf(ld(logits, base + j) - lse) * scale - (j == tg ? scale : 0.f));
  }
}

/** counter[0] = number of rows with at least one id ≥ 0. */
__global__ void count_topk_rows_kernel(float *counter, const int32_t *ids, int64_t rows, int64_t k) {
  float n = 0.f;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    bool any = false;
    for (int64_t j = 0; j < k; j++) any = any || ids[r * k + j] >= 0;
    n += any ? 1.f : 0.f;
  }
  n = block_sum(n);
  if (threadIdx.x == 0) counter[0] = n;
}

/** One block per row (kl_top_k): the KL over the row's valid ids, its gradient scattered into a zeroed row. */
template <typename T>
__global__ void kl_top_k_kernel(float *__restrict__ loss, T *__restrict__ dl, const T *__restrict__ logits,
                                const int32_t *__restrict__ ids, const float *__restrict__ teacher,
                                const float *__restrict__ counter, int64_t vocab, int64_t k, float gradScale) {
  const size_t base = size_t(blockIdx.x) * vocab, kb = size_t(blockIdx.x) * k;
  auto valid = [&](int64_t j) { return ids[kb + j] >= 0 && ids[kb + j] < vocab; };
  float ms = -INFINITY, mt = -INFINITY;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x)
    if (valid(j)) {
      ms = fmaxf(ms, ld(logits, base + ids[kb + j]));
      mt = fmaxf(mt, teacher[kb + j]);
    }
  ms = block_max(ms);
  mt = block_max(mt);
  if (dl) {
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) dl[base + j] = from_f32<T>(0.f);
    __syncthreads();  // the zeros land before the scatter below
  }
  if (ms == -INFINITY) return;  // no valid id: left out of the mean
  float ss = 0.f, st = 0.f;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x)
    if (valid(j)) {
      ss += expf(ld(logits, base + ids[kb + j]) - ms);
      st += expf(teacher[kb + j] - mt);
    }
  const float ls = ms + logf(block_sum(ss)), lt = mt + logf(block_sum(st));
  const float count = counter[0];
  float kl = 0.f;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x)
    if (valid(j)) {
      const float lp = teacher[kb + j] - lt, lq = ld(logits, base + ids[kb + j]) - ls, p = expf(lp);
      if (p > 0.f) kl += p * (lp - lq);
      if (dl) dl[base + ids[kb + j]] = from_f32<T>(gradScale * (expf(lq) - p) / count);
    }
  kl = block_sum(kl);
  if (threadIdx.x == 0) atomicAdd(loss, kl / count);
}

constexpr int64_t kMultiChunk = 8 * kBlock;  // elements per block of a multi-tensor launch

/** The last slot starting at or before element `at` of the concatenation (slots ascending by start). */
__device__ int slot_at(const MultiSlot *slots, int nSlots, int64_t at) {
  int lo = 0, hi = nSlots - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (slots[mid].start <= at) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Calls f(slot, i) for every element i of every slot that overlaps this block's chunk of the concatenation. */
template <typename F>
__device__ __forceinline__ void for_chunk(const MultiSlot *slots, int nSlots, F f) {
  const int64_t begin = int64_t(blockIdx.x) * kMultiChunk, end = begin + kMultiChunk;
  for (int k = slot_at(slots, nSlots, begin); k < nSlots && slots[k].start < end; k++) {
    const MultiSlot &sl = slots[k];
    const int64_t from = begin > sl.start ? begin - sl.start : 0;
    const int64_t to = end < sl.start + sl.n ? end - sl.start : sl.n;
    for (int64_t i = from + threadIdx.x; i < to; i += blockDim.x) f(sl, i);
  }
}

template <typename T>
__global__ void adamw_multi_kernel(const MultiSlot *__restrict__ slots, int nSlots, float beta1, float beta2,
                                   float eps, float stepSize, float sqrtBc2, float gradScale) {
  for_chunk(slots, nSlots, [=](const MultiSlot &sl, int64_t i) {
    const float gi = sl.g[i] * gradScale;
    const float mi = beta1 * sl.m[i] + (1.f - beta1) * gi;
    const float vi = beta2 * sl.v[i] + (1.f - beta2) * gi * gi;
    sl.m[i] = mi;
    sl.v[i] = vi;
    const float pi = sl.p[i] * sl.decay - stepSize * mi / (sqrtf(vi) / sqrtBc2 + eps);
    sl.p[i] = pi;
    if (sl.copy) static_cast<T *>(sl.copy)[i] = from_f32<T>(pi);
  });
}

__global__ void sum_squares_blocks_kernel(const MultiSlot *__restrict__ slots, int nSlots, float *partials) {
  float acc = 0.f;
  for_chunk(slots, nSlots, [&](const MultiSlot &sl, int64_t i) { acc += sl.g[i] * sl.g[i]; });
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

/** out = Σ partials in a fixed order (one block), so the norm does not depend on scheduling. */
__global__ void sum_partials_kernel(float *out, const float *partials, int64_t n) {
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
}

/** Runs `...` with TD bound to D's storage type (float when there is no D). */
#define LS_DISPATCH_OPT(ptr, et, TD, ...)    \
  do {                                       \
    if (!(ptr)) {                            \
      using TD = float;                      \
      __VA_ARGS__                            \
    } else {                                 \
      LS_DISPATCH_FLOAT(et, TD, __VA_ARGS__); \
    }                                        \
  } while (0)

}  // namespace

size_t ssd_scan_backward_workspace_bytes(const SsdDims &d, bool least) {
  return ssd_plan(d, least ? 0 : SIZE_MAX).bytes();
}

void ssd_scan_backward(void *dx, float *ddt, float *dA, void *dB, void *dC, float *dD, float *dState, const void *dy,
                       const float *dStateOut, const void *x, const float *dt, const float *A, const void *B,
                       const void *C, const void *D, ET dEt, const float *state, const SsdDims &d, ET et,
                       void *workspace, size_t workspaceBytes, cudaStream_t s) {
  LS_REQUIRE(d.groups > 0 && d.heads % d.groups == 0, "ssd_scan_backward: heads must be a multiple of groups");
  LS_REQUIRE(d.dState >= 1 && d.dState <= kBlock, "ssd_scan_backward: dState must be in [1, 256]");
  // A workspace below the preferred size takes longer chunks (down to the least one's).
  const SsdPlan p = ssd_plan(d, workspaceBytes);
  LS_REQUIRE(workspaceBytes >= p.bytes(),
             "ssd_scan_backward: workspace smaller than ssd_scan_backward_workspace_bytes(dims, true)");
  float *bounds = static_cast<float *>(workspace), *grads = bounds + p.bounds, *decay = grads + p.bounds;
  float *dBacc = decay + p.decay, *dCacc = dBacc + p.acc;
  const size_t stateElems = size_t(d.batch) * d.heads * d.headDim * d.dState;
  const size_t tiles = size_t(d.batch) * d.heads * p.pBlocks;
  LS_CUDA_CHECK(cudaMemsetAsync(dA, 0, sizeof(float) * d.heads, s));
  if (dD) LS_CUDA_CHECK(cudaMemsetAsync(dD, 0, sizeof(float) * d.heads, s));
  // The matrix kernel writes every ddt; the token-by-token one adds into it across tiles.
  if (!p.matrix) LS_CUDA_CHECK(cudaMemsetAsync(ddt, 0, sizeof(float) * d.batch * d.len * d.heads, s));
  LS_CUDA_CHECK(cudaMemsetAsync(dBacc, 0, sizeof(float) * 2 * p.acc, s));
  if (d.len > 0 && tiles > 0) {
    const int PN = d.headDim * d.dState;
    LS_DISPATCH_FLOAT(et, T, {
      const T *xT = static_cast<const T *>(x), *dyT = static_cast<const T *>(dy);
      const T *BT = static_cast<const T *>(B), *CT = static_cast<const T *>(C);
      ssd_chunk_local_kernel<T><<<static_cast<unsigned>(tiles * p.chunks), p.threads, 0, s>>>(
          bounds, grads, decay, dyT, xT, dt, A, BT, CT, d, p);
      LS_CHECK_LAUNCH();
      ssd_chunk_carry_kernel<<<static_cast<unsigned>(ceil_div<size_t>(stateElems, kBlock)), kBlock, 0, s>>>(
          bounds, grads, dState, decay, state, dStateOut, stateElems, PN, p.chunks);
      LS_CHECK_LAUNCH();
      LS_DISPATCH_OPT(D, dEt, TD, {
        if (p.matrix) {
          const size_t bytes = sizeof(float) * SsdMatLayout(p.chunk, d.headDim, d.dState).total;
          allow_smem<ssd_chunk_matrix_kernel<T, TD>>(bytes);
          ssd_chunk_matrix_kernel<T, TD><<<static_cast<unsigned>(size_t(d.batch) * d.heads * p.chunks), kBlock,
                                           bytes, s>>>(static_cast<T *>(dx), ddt, dA, dBacc, dCacc, dD, dyT, xT, dt,
                                                       A, BT, CT, static_cast<const TD *>(D), bounds, grads, d, p);
        } else {
          const size_t shared = sizeof(float) * 3 * (p.pTile + 2 * d.dState + 2);  // three rotating sets of sums
          ssd_backward_kernel<T, TD><<<static_cast<unsigned>(tiles * p.chunks), p.threads, shared, s>>>(
              static_cast<T *>(dx), ddt, dA, dBacc, dCacc, dD, dyT, xT, dt, A, BT, CT, static_cast<const TD *>(D),
              bounds, grads, d, p);
        }
      });
      LS_CHECK_LAUNCH();
    });
  } else if (dState && stateElems) {  // no tokens: the final state's gradient passes through
    LS_CUDA_CHECK(dStateOut ? cudaMemcpyAsync(dState, dStateOut, sizeof(float) * stateElems, cudaMemcpyDeviceToDevice, s)
                            : cudaMemsetAsync(dState, 0, sizeof(float) * stateElems, s));
  }
  launch_cast(dB, et, dBacc, ET::F32, p.acc, s);
  launch_cast(dC, et, dCacc, ET::F32, p.acc, s);
}

size_t conv1d_backward_workspace_bytes(const Conv1dDims &d) {
  return sizeof(float) * size_t(conv_dw_splits(d)) * d.channels * (d.width + 1) + 256;
}

void conv1d_backward(void *dx, float *dWeight, float *dBias, void *dState, const void *dy, const void *dStateOut,
                     const void *x, const void *weight, const void *bias, const void *state, const Conv1dDims &d,
                     ET et, ET wEt, void *workspace, cudaStream_t s) {
  LS_REQUIRE(d.width >= 1 && d.width <= kMaxConvWidth, "conv1d_backward: width must be in [1, 16]");
  const size_t padded = size_t(d.batch) * (d.width - 1 + d.len) * d.channels;
  LS_DISPATCH_FLOAT(et, T, {
    LS_DISPATCH_FLOAT(wEt, W, {
      const ConvView<T, W> v{static_cast<const T *>(x), static_cast<const T *>(state), static_cast<const T *>(dy),
                             static_cast<const W *>(weight), static_cast<const W *>(bias), d.len, d.channels,
                             d.width, d.width - 1, d.silu};
      if (padded) {
        conv_dx_kernel<T, W><<<grid_for(padded, kBlock), kBlock, 0, s>>>(
            static_cast<T *>(dx), static_cast<T *>(dState), static_cast<const T *>(dStateOut), v, d.batch);
        LS_CHECK_LAUNCH();
      }
      if (d.channels) {
        const int splits = conv_dw_splits(d), rows = d.batch * d.len;
        float *partial = static_cast<float *>(workspace);
        conv_dw_kernel<T, W><<<dim3(ceil_div(d.channels, 32), splits), kBlock, 0, s>>>(
            partial, v, d.batch, static_cast<int>(ceil_div(rows, splits)));
        LS_CHECK_LAUNCH();
        conv_dw_sum_kernel<<<grid_for(size_t(d.channels) * (d.width + 1), kBlock), kBlock, 0, s>>>(
            dWeight, dBias, partial, d.channels, d.width, splits);
        LS_CHECK_LAUNCH();
      }
    });
  });
}

/** Both kernels of one element type and accumulator width P (a lane's share of the widest head dim, padded to 2^n). */
template <typename T, int P>
void launch_attention_backward(const AttnArgs &a, void *dq, void *dk, void *dv, const void *dOut, const void *q,
                               const void *k, const void *v, const void *out, size_t qBlocks, size_t kBlocks,
                               cudaStream_t s) {
  if (qBlocks) {
    const size_t smem = attn_query_smem(a.d);
    allow_smem<&attn_query_kernel<T, P>>(smem);  // head dims above 128 take more than 48 KB
    attn_query_kernel<T, P><<<static_cast<unsigned>(qBlocks), kAttnWarps * 32, smem, s>>>(
        a, static_cast<T *>(dq), static_cast<const T *>(q), static_cast<const T *>(k), static_cast<const T *>(v),
        static_cast<const T *>(out), static_cast<const T *>(dOut));
    LS_CHECK_LAUNCH();
  }
  if (kBlocks) {
    const size_t smem = attn_key_smem(a.d);
    allow_smem<&attn_key_kernel<T, P>>(smem);
    attn_key_kernel<T, P><<<static_cast<unsigned>(kBlocks), kAttnWarps * 32, smem, s>>>(
        a, static_cast<T *>(dk), static_cast<T *>(dv), static_cast<const T *>(q), static_cast<const T *>(k),
        static_cast<const T *>(v), static_cast<const T *>(dOut));
    LS_CHECK_LAUNCH();
  }
}

size_t attention_backward_workspace_bytes(const AttnGradDims &d) {
  return sizeof(int32_t) * 2 * (size_t(d.sq) + d.skv) + sizeof(float) * 2 * size_t(d.batch) * d.sq * d.hq + 256;
}

void attention_backward(void *dq, void *dk, void *dv, const void *dOut, const void *q, const void *k, const void *v,
                        const void *out, const float *mask, const AttnGradDims &d, ET et, void *workspace,
                        size_t workspaceBytes, cudaStream_t s) {
  LS_REQUIRE(d.hkv > 0 && d.hq % d.hkv == 0, "attention_backward: hq must be a multiple of hkv");
  LS_REQUIRE(d.d <= kMaxHeadDim && d.dv <= kMaxHeadDim, "attention_backward: head dims above 256");
  LS_REQUIRE(workspaceBytes >= attention_backward_workspace_bytes(d), "attention_backward: workspace too small");
  LS_REQUIRE((d.maskBatch == 0) == (mask == nullptr), "attention_backward: mask pointer does not match maskBatch");
  LS_REQUIRE(d.maskBatch <= 1 || d.maskBatch == d.batch, "attention_backward: mask batch must be 1 or batch");
  LS_REQUIRE(d.kvLength >= 0 && d.kvLength <= d.skv, "attention_backward: kvLength must be within [0, skv]");
  LS_REQUIRE(size_t(d.sq) * (d.hq / d.hkv) < INT_MAX, "attention_backward: too many query rows per kv head");
  int32_t *ranges = static_cast<int32_t *>(workspace);
  int32_t *qranges = ranges + 2 * size_t(d.sq);
  float *lse = reinterpret_cast<float *>(qranges + 2 * size_t(d.skv));
  AttnArgs a{d, mask, ranges, qranges, lse, lse + size_t(d.batch) * d.sq * d.hq, d.hq / d.hkv};
  const size_t heads = size_t(d.batch) * d.hkv;
  const size_t qBlocks = heads * ceil_div(size_t(d.sq) * a.group, size_t(kAttnWarps));
  const size_t kBlocks = heads * ceil_div(size_t(d.skv), size_t(kAttnWarps));
  LS_REQUIRE(qBlocks < (size_t(1) << 31) && kBlocks < (size_t(1) << 31), "attention_backward: too many rows");
  if (attention_backward_mma(d, et, {dq, dk, dv, dOut, q, k, v, out})) {
    if (d.d == 32) launch_attention_backward_mma<32>(a, dq, dk, dv, dOut, q, k, v, out, s);
    else if (d.d == 48) launch_attention_backward_mma<48>(a, dq, dk, dv, dOut, q, k, v, out, s);
    else launch_attention_backward_mma<64>(a, dq, dk, dv, dOut, q, k, v, out, s);
    return;
  }
  const int dims = std::max(d.d, d.dv);
  LS_DISPATCH_FLOAT(et, T, {
    if (dims <= 32) launch_attention_backward<T, 1>(a, dq, dk, dv, dOut, q, k, v, out, qBlocks, kBlocks, s);
    else if (dims <= 64) launch_attention_backward<T, 2>(a, dq, dk, dv, dOut, q, k, v, out, qBlocks, kBlocks, s);
    else if (dims <= 128) launch_attention_backward<T, 4>(a, dq, dk, dv, dOut, q, k, v, out, qBlocks, kBlocks, s);
    else launch_attention_backward<T, 8>(a, dq, dk, dv, dOut, q, k, v, out, qBlocks, kBlocks, s);
  });
}

void rms_norm_backward(void *dx, float *dWeight, void *dGate, const void *dy, const void *x, const void *weight,
                       ET wEt, const void *gate, const void *dSum, int64_t rows, int64_t dim, int64_t groupSize,
                       float eps, bool normBeforeGate, ET et, cudaStream_t s) {
  LS_REQUIRE(groupSize > 0 && dim % groupSize == 0, "rms_norm_backward: groupSize must divide dim");
  if (dWeight) LS_CUDA_CHECK(cudaMemsetAsync(dWeight, 0, sizeof(float) * dim, s));
  const int64_t segments = rows * (dim / groupSize);
  if (!segments) return;
  const size_t bytes = sizeof(float) * dim;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(kNormBlocks, ceil_div<int64_t>(segments, kBlock / 32)));
  LS_DISPATCH_FLOAT(et, T, {
    LS_DISPATCH_OPT(weight, wEt, W, {
      allow_smem<rms_backward_kernel<T, W>>(bytes);
      rms_backward_kernel<T, W><<<blocks, kBlock, bytes, s>>>(
          static_cast<T *>(dx), dWeight, static_cast<T *>(dGate), static_cast<const T *>(dy),
          static_cast<const T *>(x), static_cast<const W *>(weight), static_cast<const T *>(gate),
          static_cast<const T *>(dSum), rows, dim, groupSize, eps, normBeforeGate);
    });
  });
  LS_CHECK_LAUNCH();
}

void layer_norm_backward(void *dx, float *dWeight, float *dBias, const void *dy, const void *x, const void *weight,
                         ET wEt, const void *dSum, int64_t rows, int64_t dim, float eps, ET et, cudaStream_t s) {
  if (dWeight) LS_CUDA_CHECK(cudaMemsetAsync(dWeight, 0, sizeof(float) * dim, s));
  if (dBias) LS_CUDA_CHECK(cudaMemsetAsync(dBias, 0, sizeof(float) * dim, s));
  if (!rows || !dim) return;
  const size_t bytes = sizeof(float) * 2 * dim;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(kNormBlocks, ceil_div<int64_t>(rows, kBlock / 32)));
  LS_DISPATCH_FLOAT(et, T, {
    LS_DISPATCH_OPT(weight, wEt, W, {
      allow_smem<ln_backward_kernel<T, W>>(bytes);
      ln_backward_kernel<T, W><<<blocks, kBlock, bytes, s>>>(
          static_cast<T *>(dx), dWeight, dBias, static_cast<const T *>(dy), static_cast<const T *>(x),
          static_cast<const W *>(weight), static_cast<const T *>(dSum), rows, dim, eps);
    });
  });
  LS_CHECK_LAUNCH();
}

void embedding_backward(float *dTable, const void *dOut, ET et, const int32_t *ids, int64_t n, int64_t vocab,
                        int64_t dim, cudaStream_t s) {
  LS_CUDA_CHECK(cudaMemsetAsync(dTable, 0, sizeof(float) * vocab * dim, s));
  const size_t total = size_t(n) * dim;
  if (!total) return;
  LS_DISPATCH_FLOAT(et, T, {
    embedding_backward_kernel<T><<<grid_for(total, kBlock), kBlock, 0, s>>>(dTable, static_cast<const T *>(dOut),
                                                                            ids, total, vocab, dim);
  });
  LS_CHECK_LAUNCH();
}

void cross_entropy(float *loss, void *dLogits, const void *logits, ET et, const int32_t *targets, int64_t rows,
                   int64_t vocab, int ignoreIndex, float gradScale, void *workspace, cudaStream_t s) {
  LS_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), s));
  if (!rows) return;
  LS_REQUIRE(rows < (int64_t(1) << 31), "cross_entropy: too many rows");
  float *counter = static_cast<float *>(workspace);
  count_targets_kernel<<<1, 1024, 0, s>>>(counter, targets, rows, ignoreIndex);
  LS_CHECK_LAUNCH();
  LS_DISPATCH_FLOAT(et, T, {
    cross_entropy_kernel<T><<<static_cast<unsigned>(rows), kBlock, 0, s>>>(
        loss, static_cast<T *>(dLogits), static_cast<const T *>(logits), targets, counter, vocab, ignoreIndex,
        gradScale);
  });
  LS_CHECK_LAUNCH();
}

void kl_top_k(float *loss, void *dLogits, const void *logits, ET et, const int32_t *ids, const float *teacher,
              int64_t rows, int64_t vocab, int64_t k, float gradScale, void *workspace, cudaStream_t s) {
  LS_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), s));
  if (!rows) return;
  LS_REQUIRE(rows < (int64_t(1) << 31), "kl_top_k: too many rows");
  float *counter = static_cast<float *>(workspace);
  count_topk_rows_kernel<<<1, 1024, 0, s>>>(counter, ids, rows, k);
  LS_CHECK_LAUNCH();
  LS_DISPATCH_FLOAT(et, T, {
    kl_top_k_kernel<T><<<static_cast<unsigned>(rows), kBlock, 0, s>>>(
        loss, static_cast<T *>(dLogits), static_cast<const T *>(logits), ids, teacher, counter, vocab, k,
        gradScale);
  });
  LS_CHECK_LAUNCH();
}

int64_t multi_blocks(int64_t total) { return (total + kMultiChunk - 1) / kMultiChunk; }

void adamw_multi(const MultiSlot *slots, int nSlots, int64_t total, void *anyCopy, ET copyEt, float lr, float beta1,
                 float beta2, float eps, int64_t step, float gradScale, cudaStream_t s) {
  if (!total) return;
  const double bc1 = 1.0 - std::pow(double(beta1), double(step));
  const double bc2 = 1.0 - std::pow(double(beta2), double(step));
  const float stepSize = static_cast<float>(lr / bc1), sqrtBc2 = static_cast<float>(std::sqrt(bc2));
  const unsigned blocks = static_cast<unsigned>(multi_blocks(total));
  LS_DISPATCH_OPT(anyCopy, copyEt, T, {
    adamw_multi_kernel<T><<<blocks, kBlock, 0, s>>>(slots, nSlots, beta1, beta2, eps, stepSize, sqrtBc2, gradScale);
  });
  LS_CHECK_LAUNCH();
}

void sum_squares_multi(float *out, const MultiSlot *slots, int nSlots, int64_t total, float *partials,
                       cudaStream_t s) {
  const int64_t blocks = multi_blocks(total);
  if (blocks) {
    sum_squares_blocks_kernel<<<static_cast<unsigned>(blocks), kBlock, 0, s>>>(slots, nSlots, partials);
    LS_CHECK_LAUNCH();
  }
  sum_partials_kernel<<<1, kBlock, 0, s>>>(out, partials, blocks);
  LS_CHECK_LAUNCH();
}
