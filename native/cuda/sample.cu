// Token sampling on the GPU, one block per row, with the CPU backend's rules (src/backends/cpu/sample.ts):
// repetition penalty, temperature, top-k, top-p, then the first candidate (in descending-logit order, ties
// to the lower id) whose cumulative probability exceeds u·total.
//
// Candidates are ranked by a unique 64-bit key (order-preserving logit bits, then the complemented id), and
// every cut (k-th candidate, top-p prefix, the draw) is "the largest key whose prefix weight reaches a
// threshold", found by an 8-pass radix select over 256-bin histograms, so nothing is sorted. Probabilities
// are fixed-point integers (2^31 = the top candidate), so every sum is exact and independent of thread order:
// one seed gives one answer on every run.
#include "device_util.cuh"

namespace {

constexpr unsigned kThreads = 1024;
constexpr double kOne = 2147483648.0;  // fixed-point scale of probabilities (relative to the top candidate)

/** Unique rank key: larger = earlier candidate. */
__device__ __forceinline__ uint64_t rank_key(float v, int64_t id) {
  const uint32_t b = __float_as_uint(v);
  const uint32_t ordered = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return (uint64_t(ordered) << 32) | (0xffffffffu - static_cast<uint32_t>(id));
}
__device__ __forceinline__ int32_t id_of(uint64_t key) { return static_cast<int32_t>(0xffffffffu - uint32_t(key)); }

/** Every vocabulary entry with weight 1 (for the top-k count). */
struct Vocab {
  const float *z;
  int64_t n;
  __device__ void get(int64_t i, uint64_t &key, uint64_t &w) const {
    key = rank_key(z[i], i);
    w = 1;
  }
};
/** The compacted candidates (after top-k) with their fixed-point probabilities. */
struct List {
  const uint64_t *keys;
  const uint32_t *w;
  int64_t n;
  __device__ void get(int64_t i, uint64_t &key, uint64_t &weight) const {
    key = keys[i];
    weight = w[i];
  }
};

/**
 * The largest key T such that the weight of candidates with key ≥ max(T, floorKey) reaches `need` (which the
 * caller guarantees is ≤ the total). Keys are unique, so T is the key of the candidate where the running
 * weight (in rank order) first reaches `need`.
 */
template <typename Source>
__device__ uint64_t radix_select(const Source &src, uint64_t floorKey, uint64_t need) {
  __shared__ unsigned long long hist[256];
  __shared__ unsigned long long chosen, aboveShared;
  uint64_t prefix = 0, above = 0;  // above: weight of candidates ranked before the current prefix range
  const unsigned lane = threadIdx.x & 31;
  for (int level = 0; level < 8; level++) {
    const int shift = 56 - 8 * level;
    for (unsigned b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
    __syncthreads();
    for (int64_t b0 = 0; b0 < src.n; b0 += blockDim.x) {
      const int64_t i = b0 + threadIdx.x;
      uint32_t bin = 256;
      uint64_t w = 0;
      if (i < src.n) {
        uint64_t k;
        src.get(i, k, w);
        if (k >= floorKey && (level == 0 || (k >> (shift + 8)) == (prefix >> (shift + 8)))) bin = (k >> shift) & 255;
        else w = 0;
      }
      // High digits are shared by most candidates: a warp whose lanes agree adds once (no atomic contention).
      const unsigned peers = __match_any_sync(0xffffffffu, bin);
      if (peers == 0xffffffffu) {
        for (int o = 16; o > 0; o >>= 1) w += __shfl_xor_sync(0xffffffffu, w, o);
        if (lane == 0 && bin < 256) atomicAdd(&hist[bin], static_cast<unsigned long long>(w));
      } else if (bin < 256 && w) {
        atomicAdd(&hist[bin], static_cast<unsigned long long>(w));
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t acc = above;
      int d = 255;
      for (; d > 0; d--) {
        if (acc + hist[d] >= need) break;
        acc += hist[d];
      }
      chosen = prefix | (uint64_t(d) << shift);
      aboveShared = acc;
    }
    __syncthreads();
    prefix = chosen;
    above = aboveShared;
  }
  return prefix;
}

/** Block-wide sum of a per-thread u64 (exact). */
__device__ uint64_t block_sum_u64(uint64_t v) {
  __shared__ unsigned long long total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(&total, static_cast<unsigned long long>(v));
  __syncthreads();
  const uint64_t r = total;
  __syncthreads();
  return r;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) sample_kernel(int32_t *__restrict__ out, const T *__restrict__ logits,
                              const float *__restrict__ uniforms, const int32_t *__restrict__ previous,
                              char *__restrict__ scratch, SampleParams p) {
  const int64_t row = blockIdx.x, vocab = p.vocab;
  const T *x = logits + row * vocab;
  char *base = scratch + row * vocab * 16;
  uint64_t *keys = reinterpret_cast<uint64_t *>(base);                // compacted candidates
  uint32_t *weights = reinterpret_cast<uint32_t *>(base + vocab * 8);  // their fixed-point probabilities
  float *z = reinterpret_cast<float *>(base + vocab * 12);             // penalised logits
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

  // The first candidate: the maximum (lowest id among equals, NaN never). Greedy decoding stops here.
  __shared__ unsigned long long best, count;
  if (threadIdx.x == 0) best = 0, count = 0;
  __syncthreads();
  uint64_t mine = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
    if (!isnan(z[i])) mine = max(mine, rank_key(z[i], i));
  atomicMax(&best, static_cast<unsigned long long>(mine));
  __syncthreads();
  if (p.temperature <= 0.f || best == 0) {
    if (threadIdx.x == 0) out[row] = best ? id_of(best) : 0;
    return;
  }
  const float m = z[id_of(best)];

  const uint64_t cutK = p.topK > 0 && p.topK < vocab ? radix_select(Vocab{z, vocab}, 0, uint64_t(p.topK)) : 0;

  // Compact the kept candidates (weight > 0) with their fixed-point probabilities.
  const unsigned lane = threadIdx.x & 31;
  uint64_t mass = 0;
  for (int64_t b0 = 0; b0 < vocab; b0 += blockDim.x) {
    const int64_t i = b0 + threadIdx.x;
    uint64_t key = 0;
    uint32_t w = 0;
    if (i < vocab && !isnan(z[i])) {
      key = rank_key(z[i], i);
      if (key >= cutK) w = static_cast<uint32_t>(__double2ll_rn(double(expf((z[i] - m) / p.temperature)) * kOne));
    }
    const unsigned keep = __ballot_sync(0xffffffffu, w > 0);
    unsigned long long slot = 0;
    if (lane == 0 && keep) slot = atomicAdd(&count, static_cast<unsigned long long>(__popc(keep)));
    slot = __shfl_sync(0xffffffffu, slot, 0) + __popc(keep & ((1u << lane) - 1));
    if (w > 0) {
      keys[slot] = key;
      weights[slot] = w;
      mass += w;
    }
  }
  uint64_t total = block_sum_u64(mass);  // also orders the compaction writes before the reads below
  const List list{keys, weights, static_cast<int64_t>(count)};

  uint64_t cutP = 0;
  if (p.topP < 1.f) {
    // The shortest prefix whose probability reaches topP.
    uint64_t need = static_cast<uint64_t>(ceil(double(p.topP) * double(total)));
    need = need < 1 ? 1 : (need > total ? total : need);
    cutP = radix_select(list, 0, need);
    uint64_t kept = 0;
    for (int64_t i = threadIdx.x; i < list.n; i += blockDim.x)
      if (keys[i] >= cutP) kept += weights[i];
    total = block_sum_u64(kept);
  }
  uint64_t target = static_cast<uint64_t>(floor(double(uniforms[row]) * double(total)));
  if (target >= total) target = total - 1;
  const uint64_t pick = radix_select(list, cutP, target + 1);  // first candidate whose running weight > target
  if (threadIdx.x == 0) out[row] = id_of(pick);
}

}  // namespace

void launch_sample(int32_t *out, const void *logits, ET t, const float *uniforms, const int32_t *previous,
                   void *scratch, const SampleParams &p, cudaStream_t s) {
  if (p.rows == 0) return;
  LS_DISPATCH_FLOAT(t, T, {
    sample_kernel<T><<<static_cast<unsigned>(p.rows), kThreads, 0, s>>>(
        out, static_cast<const T *>(logits), uniforms, previous, static_cast<char *>(scratch), p);
  });
  LS_CHECK_LAUNCH();
}
