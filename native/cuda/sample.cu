// Token sampling on the GPU, one block per row: repetition penalty, temperature, top-k, top-p, then an
// inverse-CDF draw with the caller's uniform. Top-k/top-p thresholds come from binary searches over the
// order-preserving bit patterns of the scaled logits, so no sort of the 150k-entry vocabulary is needed.
#include <climits>

#include "device_util.cuh"

namespace {

constexpr unsigned kThreads = 1024;

/** Order-preserving map from floats to unsigned keys. */
__device__ __forceinline__ uint32_t order_key(float v) {
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ unsigned block_count(unsigned v) {
  return static_cast<unsigned>(block_sum(static_cast<float>(v)) + 0.5f);
}

/** Largest key t with count(key ≥ t) ≥ k: the k-th largest value (ties at the threshold are all kept). */
__device__ uint32_t kth_largest_key(const float *z, int64_t vocab, int64_t k) {
  uint32_t lo = 0, hi = 0xffffffffu;  // invariant: count(≥ lo) ≥ k
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    unsigned c = 0;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) c += order_key(z[i]) >= mid;
    if (block_count(c) >= k) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

template <typename T>
__global__ void sample_kernel(int32_t *__restrict__ out, const T *__restrict__ logits,
                              const float *__restrict__ uniforms, const int32_t *__restrict__ previous,
                              float *__restrict__ scratch, SampleParams p) {
  const int64_t row = blockIdx.x, vocab = p.vocab;
  const T *x = logits + row * vocab;
  float *z = scratch + row * vocab;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) z[i] = to_f32(x[i]);
  __syncthreads();
  if (p.repetitionPenalty != 1.f && previous) {
    // Recomputed from the original logit, so an id seen twice is penalised once.
    for (int64_t j = threadIdx.x; j < p.nPrevious; j += blockDim.x) {
      const int32_t id = previous[row * p.nPrevious + j];
      if (id < 0 || id >= vocab) continue;
      const float v = to_f32(x[id]);
      z[id] = v > 0.f ? v / p.repetitionPenalty : v * p.repetitionPenalty;
    }
    __syncthreads();
  }

  __shared__ int32_t pick;
  if (p.temperature <= 0.f) {  // greedy: first index of the maximum
    float best = -INFINITY;
    int64_t at = LLONG_MAX;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
      if (z[i] > best) best = z[i], at = i;
    const float m = block_max(best);
    if (best != m) at = LLONG_MAX;
    __shared__ unsigned long long first;
    if (threadIdx.x == 0) first = ULLONG_MAX;
    __syncthreads();
    if (at != LLONG_MAX) atomicMin(&first, static_cast<unsigned long long>(at));
    __syncthreads();
    if (threadIdx.x == 0) out[row] = first == ULLONG_MAX ? 0 : static_cast<int32_t>(first);
    return;
  }

  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    z[i] /= p.temperature;
    m = fmaxf(m, z[i]);
  }
  m = block_max(m);

  uint32_t cut = 0;  // keep keys ≥ cut
  if (p.topK > 0 && p.topK < vocab) cut = kth_largest_key(z, vocab, p.topK);
  if (p.topP < 1.f) {
    // Keep tokens whose strictly-larger mass is below topP (the rule of HF's TopPLogitsWarper):
    // the smallest key t with mass(key > t) < topP·total.
    float total = 0.f;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
      if (order_key(z[i]) >= cut) total += expf(z[i] - m);
    const float limit = p.topP * block_sum(total);
    uint32_t lo = cut, hi = 0xffffffffu;
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo) / 2;
      float above = 0.f;
      for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
        const uint32_t k = order_key(z[i]);
        if (k >= cut && k > mid) above += expf(z[i] - m);
      }
      if (block_sum(above) < limit) hi = mid;
      else lo = mid + 1;
    }
    cut = lo;
  }

  // Inverse CDF in vocabulary order: each thread owns a contiguous chunk; a block scan finds the owner.
  const int64_t chunk = (vocab + blockDim.x - 1) / blockDim.x;
  const int64_t begin = threadIdx.x * chunk, end = begin + chunk < vocab ? begin + chunk : vocab;
  float own = 0.f;
  int64_t lastKept = -1;
  for (int64_t i = begin; i < end; i++)
    if (order_key(z[i]) >= cut) own += expf(z[i] - m), lastKept = i;
  __shared__ float prefix[kThreads + 1];
  prefix[threadIdx.x + 1] = own;
  if (threadIdx.x == 0) {
    prefix[0] = 0.f;
    pick = -1;
  }
  __syncthreads();
  if (threadIdx.x == 0)
    for (unsigned t = 1; t <= blockDim.x; t++) prefix[t] += prefix[t - 1];
  __syncthreads();
  const float target = uniforms[row] * prefix[blockDim.x];
  const float start = prefix[threadIdx.x];
  if (own > 0.f && target >= start && target < start + own) {
    float acc = start;
    int64_t chosen = lastKept;
    for (int64_t i = begin; i < end; i++) {
      if (order_key(z[i]) < cut) continue;
      acc += expf(z[i] - m);
      if (target < acc) {
        chosen = i;
        break;
      }
    }
    pick = static_cast<int32_t>(chosen);
  }
  __syncthreads();
  // Rounding can leave the target at the very end: take the last kept token.
  const float lastIdx = block_max(static_cast<float>(lastKept));
  if (threadIdx.x == 0) out[row] = pick >= 0 ? pick : static_cast<int32_t>(lastIdx);
}

}  // namespace

void launch_sample(int32_t *out, const void *logits, ET t, const float *uniforms, const int32_t *previous,
                   float *scratch, const SampleParams &p, cudaStream_t s) {
  if (p.rows == 0) return;
  LS_DISPATCH_FLOAT(t, T, {
    sample_kernel<T><<<static_cast<unsigned>(p.rows), kThreads, 0, s>>>(out, static_cast<const T *>(logits),
                                                                         uniforms, previous, scratch, p);
  });
  LS_CHECK_LAUNCH();
}
