// Softmax mass per key of one query position (attention_mass.h). The generic attention kernel with weights
// gives one warp a whole head's row (serial over tens of thousands of keys, plus the weighted V sum the
// probe throws away); here the keys are spread over the grid and V is never read.
#include "attention_mass.h"

namespace {

constexpr int kMassMaxDim = 256;
constexpr int kKeysPerBlock = 8;  // one warp per key
constexpr int kThreads = 256;

/** scores[h, j] = scale · q_h · k_j for the G = hq / hkv query heads of kv head blockIdx.y. */
template <typename T>
__global__ void __launch_bounds__(kKeysPerBlock * 32) mass_scores(float *scores, const T *q, const T *k,
                                                                   AttentionMassDims p) {
  extern __shared__ __align__(16) unsigned char smem[];
  float *sq = reinterpret_cast<float *>(smem);  // [G][d], already scaled
  const int G = p.hq / p.hkv, hk = blockIdx.y;
  for (int i = threadIdx.x; i < G * p.d; i += blockDim.x)
    sq[i] = load_f32(q, static_cast<size_t>(hk) * G * p.d + i) * p.scale;
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int j = blockIdx.x * kKeysPerBlock + warp;
  if (j >= p.kvLength) return;
  constexpr int kPer = kMassMaxDim / 32;
  const T *kr = k + (static_cast<size_t>(j) * p.hkv + hk) * p.d;
  float kv[kPer];
#pragma unroll
  for (int e = 0; e < kPer; ++e) kv[e] = lane + 32 * e < p.d ? load_f32(kr, lane + 32 * e) : 0.f;
  for (int g = 0; g < G; ++g) {
    float s = 0.f;
#pragma unroll
    for (int e = 0; e < kPer; ++e)
      if (lane + 32 * e < p.d) s += sq[g * p.d + lane + 32 * e] * kv[e];
    for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) scores[static_cast<size_t>(hk * G + g) * p.kvLength + j] = s;
  }
}

/** The block's max (isMax) or sum of v; every thread gets it. */
__device__ float block_reduce(float v, bool isMax, float *shared) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int o = 16; o; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = isMax ? fmaxf(v, w) : v + w;
  }
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = shared[0];
    for (int w = 1; w < kThreads / 32; ++w) r = isMax ? fmaxf(r, shared[w]) : r + shared[w];
    shared[0] = r;
  }
  __syncthreads();
  const float r = shared[0];
  __syncthreads();  // shared is reused by the next reduction
  return r;
}

/** stats[h] = (max_j scores[h, j], 1 / Σ_j exp(scores[h, j] − max)), one block per head. */
__global__ void __launch_bounds__(kThreads) mass_stats(float *stats, const float *scores, int kvLength) {
  __shared__ float shared[kThreads / 32];
  const float *row = scores + static_cast<size_t>(blockIdx.x) * kvLength;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < kvLength; j += kThreads) m = fmaxf(m, row[j]);
  m = block_reduce(m, true, shared);
  float l = 0.f;
  for (int j = threadIdx.x; j < kvLength; j += kThreads) l += expf(row[j] - m);
  l = block_reduce(l, false, shared);
  if (threadIdx.x == 0) {
    stats[2 * blockIdx.x] = m;
    stats[2 * blockIdx.x + 1] = 1.f / l;
  }
}

/** out[j − from] = Σ_h exp(scores[h, j] − max_h) / sum_h. */
__global__ void __launch_bounds__(kThreads) mass_sum(float *out, const float *scores, const float *stats,
                                                     AttentionMassDims p) {
  const int j = p.from + blockIdx.x * kThreads + threadIdx.x;
  if (j >= p.to) return;
  float s = 0.f;
  for (int h = 0; h < p.hq; ++h)
    s += expf(scores[static_cast<size_t>(h) * p.kvLength + j] - stats[2 * h]) * stats[2 * h + 1];
  out[j - p.from] = s;
}

}  // namespace

void attention_mass(float *out, float *scores, float *stats, const void *q, const void *k,
                    const AttentionMassDims &a, DT dt, cudaStream_t stream) {
  LS_REQUIRE(a.hkv > 0 && a.hq % a.hkv == 0, "attentionMass: hq must be a multiple of hkv");
  LS_REQUIRE(a.d > 0 && a.d <= kMassMaxDim, "attentionMass: head dims above 256 are not supported");
  LS_REQUIRE(0 < a.kvLength && a.kvLength <= a.skv, "attentionMass: kvLength must be in 1..skv");
  LS_REQUIRE(0 <= a.from && a.from < a.to && a.to <= a.kvLength, "attentionMass: bad key span");
  const size_t smem = sizeof(float) * (a.hq / a.hkv) * a.d;
  LS_REQUIRE(smem <= 48 * 1024, "attentionMass: too many query heads per kv head for shared memory");
  const dim3 grid(static_cast<unsigned>(ceil_div(a.kvLength, kKeysPerBlock)), static_cast<unsigned>(a.hkv));
  LS_DISPATCH_DT(dt, T, {
    mass_scores<T><<<grid, kKeysPerBlock * 32, smem, stream>>>(scores, static_cast<const T *>(q),
                                                               static_cast<const T *>(k), a);
    LS_CHECK_LAUNCH();
  });
  mass_stats<<<static_cast<unsigned>(a.hq), kThreads, 0, stream>>>(stats, scores, a.kvLength);
  LS_CHECK_LAUNCH();
  mass_sum<<<static_cast<unsigned>(ceil_div(a.to - a.from, kThreads)), kThreads, 0, stream>>>(out, scores, stats,
                                                                                              a);
  LS_CHECK_LAUNCH();
}
