// Token sampling on the GPU, one block per row, with the CPU backend's rules (src/backends/cpu/sample.ts):
// repetition penalty, temperature, top-k, top-p, then the first candidate (in descending-logit order, ties
// to the lower id) whose cumulative probability exceeds u·total. Candidates are ranked by a unique 64-bit
// key (logit order bits, then the complemented id); every cut is a binary search over that key, so no sort
// of the 150k-entry vocabulary is needed.
#include "device_util.cuh"

namespace {

constexpr unsigned kThreads = 1024;

/** Unique rank key: larger = earlier candidate. */
__device__ __forceinline__ uint64_t rank_key(float v, int64_t id) {
  const uint32_t b = __float_as_uint(v);
  const uint32_t ordered = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return (uint64_t(ordered) << 32) | (0xffffffffu - static_cast<uint32_t>(id));
}

/** Largest T with pred(T) (pred is monotone: true up to some key). pred(0) must hold. */
template <typename Pred>
__device__ uint64_t largest_key(Pred pred) {
  uint64_t lo = 0, hi = ~uint64_t(0);
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2 + 1;
    if (pred(mid)) lo = mid;
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
  float *z = scratch + row * vocab * 2;  // penalised logits
  float *e = z + vocab;                  // exp((z − max) / temperature)
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

  // The first candidate: the maximum (lowest id among equals). Greedy decoding stops here.
  __shared__ unsigned long long best;
  if (threadIdx.x == 0) best = 0;
  __syncthreads();
  uint64_t mine = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
    if (!isnan(z[i])) mine = max(mine, rank_key(z[i], i));
  atomicMax(&best, static_cast<unsigned long long>(mine));
  __syncthreads();
  if (p.temperature <= 0.f) {
    if (threadIdx.x == 0) out[row] = best ? static_cast<int32_t>(0xffffffffu - uint32_t(best)) : 0;
    return;
  }
  const float m = z[0xffffffffu - uint32_t(best)];
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) e[i] = expf((z[i] - m) / p.temperature);
  __syncthreads();

  auto count_from = [&](uint64_t t) {
    float c = 0.f;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) c += rank_key(z[i], i) >= t;
    return block_sum(c);
  };
  auto mass_from = [&](uint64_t t) {
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
      if (rank_key(z[i], i) >= t) s += e[i];
    return block_sum(s);
  };

  uint64_t cut = 0;  // candidates with key ≥ cut are kept
  if (p.topK > 0 && p.topK < vocab) {
    const float k = static_cast<float>(p.topK);
    cut = largest_key([&](uint64_t t) { return count_from(t) >= k; });
  }
  float total = mass_from(cut);
  if (p.topP < 1.f) {
    // The shortest prefix whose probability reaches topP: the largest key whose prefix mass does.
    const float need = p.topP * total;
    const uint64_t topK = cut;
    cut = largest_key([&](uint64_t t) { return mass_from(t > topK ? t : topK) >= need; });
    total = mass_from(cut);
  }
  const float target = uniforms[row] * total;
  uint64_t pick;
  if (target < total) {
    pick = largest_key([&](uint64_t t) { return mass_from(t > cut ? t : cut) > target; });
  } else {
    pick = cut;  // rounding left the target at the very end: the last kept candidate
  }
  // `pick` is a key bound; the chosen candidate is the kept one with the smallest key ≥ pick.
  __shared__ unsigned long long chosen;
  if (threadIdx.x == 0) chosen = ~0ull;
  __syncthreads();
  unsigned long long low = ~0ull;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const uint64_t k = rank_key(z[i], i);
    if (k >= pick && k >= cut && k < low) low = k;
  }
  atomicMin(&chosen, low);
  __syncthreads();
  if (threadIdx.x == 0) out[row] = static_cast<int32_t>(0xffffffffu - uint32_t(chosen));
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
