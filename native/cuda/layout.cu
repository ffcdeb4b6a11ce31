// Data-movement and row-reduction kernels: rotary, embedding gather, slices, permute, flip, reduce, argmax.
#include <algorithm>
#include <climits>

#include "device_util.cuh"

namespace {

constexpr unsigned kBlock = 256;

/**
 * One thread per rotated pair (i, i + rotaryDim/2) of a head, or per pass-through element beyond rotaryDim:
 * consecutive threads touch consecutive elements. I is uint32_t whenever the index space allows.
 */
template <typename T, typename I>
__global__ void rotary_kernel(T *__restrict__ out, const T *__restrict__ x, const float *__restrict__ cos,
                              const float *__restrict__ sin, I total, I heads, I seq, I headDim, I rotaryDim,
                              bool tableShared) {
  const I half = rotaryDim / 2, per = headDim - half;  // work items per head
  for (I w = I(blockIdx.x) * blockDim.x + threadIdx.x; w < total; w += I(gridDim.x) * blockDim.x) {
    const I head = w / per, j = w - head * per;
    const size_t base = size_t(head) * headDim;
    if (j < half) {
      const I pos = head / heads;  // batch·seq + position
      const size_t t = size_t(tableShared ? pos % seq : pos) * rotaryDim + j;
      const float x1 = to_f32(x[base + j]), x2 = to_f32(x[base + j + half]);
      // rotate_half: [x1, x2] → [−x2, x1]
      out[base + j] = from_f32<T>(x1 * cos[t] - x2 * sin[t]);
      out[base + j + half] = from_f32<T>(x2 * cos[t + half] + x1 * sin[t + half]);
    } else {
      const size_t k = base + rotaryDim + (j - half);
      out[k] = x[k];
    }
  }
}

/**
 * Full-width rotary (rotaryDim = headDim) with 16-byte accesses: a thread owns V consecutive pairs (j, j + half)
 * of one position and applies them to HG heads, so each cos/sin pack is loaded once per HG heads instead of
 * once per head (the f32 tables otherwise outweigh the activations).
 */
template <typename T, int V, int HG>
__global__ void rotary_packed(T *__restrict__ out, const T *__restrict__ x, const float *__restrict__ cos,
                              const float *__restrict__ sin, uint32_t total, uint32_t heads, uint32_t seq,
                              uint32_t half, uint32_t packsPerHalf, uint32_t headGroups, bool tableShared) {
  for (uint32_t w = blockIdx.x * blockDim.x + threadIdx.x; w < total; w += gridDim.x * blockDim.x) {
    const uint32_t jp = w % packsPerHalf, rest = w / packsPerHalf;
    const uint32_t hg = rest % headGroups, pos = rest / headGroups;  // pos: batch·seq + position
    const uint32_t j = jp * V;
    const size_t t = size_t(tableShared ? pos % seq : pos) * (2 * half) + j;
    float c1[V], s1[V], c2[V], s2[V];
    load_pack<float, V>(cos, t, c1);
    load_pack<float, V>(sin, t, s1);
    load_pack<float, V>(cos, t + half, c2);
    load_pack<float, V>(sin, t + half, s2);
#pragma unroll
    for (int k = 0; k < HG; k++) {
      const uint32_t h = hg * HG + k;
      if (h >= heads) break;
      const size_t base = (size_t(pos) * heads + h) * (2 * half) + j;
      float x1[V], x2[V];
      load_pack<T, V>(x, base, x1);
      load_pack<T, V>(x, base + half, x2);
#pragma unroll
      for (int e = 0; e < V; e++) {
        const float a = x1[e], b = x2[e];
        x1[e] = a * c1[e] - b * s1[e];  // rotate_half: [x1, x2] → [−x2, x1]
        x2[e] = b * c2[e] + a * s2[e];
      }
      store_pack<T, V>(out, base, x1);
      store_pack<T, V>(out, base + half, x2);
    }
  }
}

/** Gathers units (elements or runs of bytes) through per-axis source strides (may be negative). */
struct Gather {
  int rank;
  uint32_t shape[kMaxRank];
  int64_t stride[kMaxRank];
};

template <typename U>
__global__ void gather_kernel(U *__restrict__ out, const U *__restrict__ x, uint32_t n, Gather g) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    uint32_t r = i;
    int64_t src = 0;
    // Constant indices keep the tables in the parameter bank (see binary_rows).
#pragma unroll
    for (int d = kMaxRank - 1; d >= 0; d--) {
      if (d >= g.rank) continue;
      const uint32_t c = r % g.shape[d];
      r /= g.shape[d];
      src += int64_t(c) * g.stride[d];
    }
    out[i] = x[src];
  }
}

/** Runs the gather with the widest unit (≤ 16 bytes) that divides the innermost run and both pointers. */
void run_gather(void *out, const void *x, size_t elementBytes, Gather g, bool innerContiguous, cudaStream_t s) {
  size_t n = 1;
  for (int d = 0; d < g.rank; d++) n *= g.shape[d];
  if (n == 0) return;
  size_t runBytes = elementBytes * (innerContiguous ? g.shape[g.rank - 1] : 1);
  size_t unit = 16;
  while (unit > 1 && (runBytes % unit || !aligned_to(out, unit) || !aligned_to(x, unit) ||
                      (!innerContiguous && unit != elementBytes) || unit > runBytes))
    unit >>= 1;
  if (!innerContiguous) unit = elementBytes;
  // Re-express the gather in units: the inner axis grows, every stride scales by elementBytes / unit.
  if (innerContiguous) g.shape[g.rank - 1] = static_cast<uint32_t>(runBytes / unit);
  for (int d = 0; d < g.rank; d++) {
    if (innerContiguous && d == g.rank - 1) g.stride[d] = 1;
    else g.stride[d] = g.stride[d] * static_cast<int64_t>(elementBytes) / static_cast<int64_t>(unit);
  }
  n = n * elementBytes / unit;
  LS_REQUIRE(n < (size_t(1) << 32), "gather of more than 2^32 units");
  const unsigned grid = grid_for(n, kBlock);
  const uint32_t m = static_cast<uint32_t>(n);
  switch (unit) {
    case 16:
      gather_kernel<uint4><<<grid, kBlock, 0, s>>>(static_cast<uint4 *>(out), static_cast<const uint4 *>(x), m, g);
      break;
    case 8:
      gather_kernel<uint2><<<grid, kBlock, 0, s>>>(static_cast<uint2 *>(out), static_cast<const uint2 *>(x), m, g);
      break;
    case 4:
      gather_kernel<uint32_t>
          <<<grid, kBlock, 0, s>>>(static_cast<uint32_t *>(out), static_cast<const uint32_t *>(x), m, g);
      break;
    case 2:
      gather_kernel<uint16_t>
          <<<grid, kBlock, 0, s>>>(static_cast<uint16_t *>(out), static_cast<const uint16_t *>(x), m, g);
      break;
    default:
      gather_kernel<uint8_t>
          <<<grid, kBlock, 0, s>>>(static_cast<uint8_t *>(out), static_cast<const uint8_t *>(x), m, g);
  }
  LS_CHECK_LAUNCH();
}

/** The first out-of-range embedding id as (id << 32 | vocab), 0 when none; read by take_embedding_error. */
__device__ unsigned long long g_badEmbedding = 0;

template <typename U>
__global__ void embedding_kernel(U *__restrict__ out, const U *__restrict__ table, const int32_t *__restrict__ ids,
                                 size_t n, int64_t rowUnits, int64_t vocab) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / rowUnits, c = i % rowUnits;
    const int32_t id = ids[row];
    if (id >= 0 && id < vocab) {
      out[i] = table[int64_t(id) * rowUnits + c];
    } else {  // never read outside the table; the host reports the id at the next download
      out[i] = U{};
      if (c == 0)
        atomicCAS(&g_badEmbedding, 0ull, (static_cast<unsigned long long>(static_cast<uint32_t>(id)) << 32) |
                                             static_cast<uint32_t>(vocab));
    }
  }
}

/** One thread per output element: a sequential f32 walk over its bag (the CPU backend's order). */
template <typename T>
__global__ void embedding_bag_kernel(T *__restrict__ out, const T *__restrict__ table, const int32_t *__restrict__ ids,
                                     int64_t nIds, const int32_t *__restrict__ offsets, size_t n, int64_t dim,
                                     int64_t vocab, bool mean) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / dim, c = i % dim;
    const int64_t from = min(max(int64_t(offsets[r]), int64_t(0)), nIds);
    const int64_t to = min(max(int64_t(offsets[r + 1]), from), nIds);
    float acc = 0.f;
    for (int64_t j = from; j < to; j++) {
      const int32_t id = ids[j];
      if (id >= 0 && id < vocab)
        acc += to_f32(table[int64_t(id) * dim + c]);
      else if (c == 0)
        atomicCAS(&g_badEmbedding, 0ull, (static_cast<unsigned long long>(static_cast<uint32_t>(id)) << 32) |
                                             static_cast<uint32_t>(vocab));
    }
    out[i] = from_f32<T>(mean && to > from ? acc / static_cast<float>(to - from) : acc);
  }
}

template <typename T>
__global__ void reduce_rows_kernel(T *__restrict__ out, const T *__restrict__ x, int64_t dim, ReduceOp op) {
  const T *row = x + int64_t(blockIdx.x) * dim;
  float acc = op == ReduceOp::Max ? -INFINITY : 0.f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = to_f32(row[i]);
    acc = op == ReduceOp::Max ? fmaxf(acc, v) : acc + v;
  }
  acc = op == ReduceOp::Max ? block_max(acc) : block_sum(acc);
  if (threadIdx.x == 0) out[blockIdx.x] = from_f32<T>(op == ReduceOp::Mean ? acc / static_cast<float>(dim) : acc);
}

/** Reduction over the middle axis of [outer, dim, inner]: one thread per (outer, inner), coalesced on inner. */
template <typename T>
__global__ void reduce_middle_kernel(T *__restrict__ out, const T *__restrict__ x, int64_t outer, int64_t dim,
                                     int64_t inner, ReduceOp op) {
  const int64_t n = outer * inner;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = i / inner, j = i % inner;
    const T *p = x + o * dim * inner + j;
    float acc = op == ReduceOp::Max ? -INFINITY : 0.f;
    for (int64_t d = 0; d < dim; d++) {
      const float v = to_f32(p[d * inner]);
      acc = op == ReduceOp::Max ? fmaxf(acc, v) : acc + v;
    }
    out[i] = from_f32<T>(op == ReduceOp::Mean ? acc / static_cast<float>(dim) : acc);
  }
}

/**
 * First pass of a split middle-axis reduction: partial[s, o, j] over rows [s·chunk, (s+1)·chunk) of dim, in f32,
 * one thread per partial (coalesced on j). The second pass combines the splits in order: the result does not
 * depend on scheduling.
 */
template <typename T>
__global__ void reduce_split_kernel(float *__restrict__ partial, const T *__restrict__ x, int64_t outer, int64_t dim,
                                    int64_t inner, int64_t chunk, int64_t splits, ReduceOp op) {
  const int64_t outputs = outer * inner, n = splits * outputs;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t sp = i / outputs, r = i % outputs, o = r / inner, j = r % inner;
    const int64_t from = sp * chunk, to = min(dim, from + chunk);
    const T *p = x + o * dim * inner + j;
    float acc = op == ReduceOp::Max ? -INFINITY : 0.f;
    for (int64_t d = from; d < to; d++) {
      const float v = to_f32(p[d * inner]);
      acc = op == ReduceOp::Max ? fmaxf(acc, v) : acc + v;
    }
    partial[i] = acc;
  }
}

template <typename T>
__global__ void reduce_splits_kernel(T *__restrict__ out, const float *__restrict__ partial, int64_t outputs,
                                     int64_t splits, int64_t dim, ReduceOp op) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < outputs; i += int64_t(gridDim.x) * blockDim.x) {
    float acc = op == ReduceOp::Max ? -INFINITY : 0.f;
    for (int64_t sp = 0; sp < splits; sp++) {
      const float v = partial[sp * outputs + i];
      acc = op == ReduceOp::Max ? fmaxf(acc, v) : acc + v;
    }
    out[i] = from_f32<T>(op == ReduceOp::Mean ? acc / static_cast<float>(dim) : acc);
  }
}

/** Splits of the middle axis for [outer, dim, inner] (1: the one-pass kernel has threads enough). */
int64_t reduce_splits(int64_t outer, int64_t dim, int64_t inner) {
  const int64_t outputs = outer * inner, target = int64_t(1) << 17;  // threads to keep an H100 busy
  if (inner == 1 || outputs >= target || dim < 64) return 1;
  return std::min((dim + 31) / 32, (target + outputs - 1) / outputs);
}

template <typename T>
__global__ void argmax_kernel(int32_t *__restrict__ out, const T *__restrict__ x, int64_t dim) {
  const T *row = x + int64_t(blockIdx.x) * dim;
  float best = -INFINITY;
  int64_t at = LLONG_MAX;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = to_f32(row[i]);
    if (v > best) best = v, at = i;  // strided walk: the first index wins within a thread
  }
  __shared__ float bv[1024];
  __shared__ int64_t bi[1024];
  bv[threadIdx.x] = best;
  bi[threadIdx.x] = at;
  __syncthreads();
  for (unsigned h = blockDim.x / 2; h > 0; h >>= 1) {
    if (threadIdx.x < h) {
      const float v = bv[threadIdx.x + h];
      const int64_t j = bi[threadIdx.x + h];
      if (v > bv[threadIdx.x] || (v == bv[threadIdx.x] && j < bi[threadIdx.x])) bv[threadIdx.x] = v, bi[threadIdx.x] = j;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<int32_t>(bi[0] == LLONG_MAX ? 0 : bi[0]);
}

__global__ void rope_table_kernel(float *__restrict__ cos, float *__restrict__ sin, const float *__restrict__ pos,
                                  const float *__restrict__ invFreq, const int32_t *__restrict__ rowOf, uint32_t seq,
                                  uint32_t half) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(seq) * half) return;
  const uint32_t p = uint32_t(i / half), j = uint32_t(i % half);
  const float angle = __fmul_rn(pos[size_t(rowOf[j]) * seq + p], invFreq[j]);  // an f32 product, as PyTorch's
  float s, c;
  sincosf(angle, &s, &c);  // the accurate version (no fast math): angles reach 10^5 and more
  const size_t o = size_t(p) * 2 * half + j;
  cos[o] = cos[o + half] = c;
  sin[o] = sin[o + half] = s;
}

}  // namespace

void launch_rotary(void *out, const void *x, ET t, const float *cos, const float *sin, int64_t batch, int64_t seq,
                   int64_t heads, int64_t headDim, int64_t rotaryDim, bool tableShared, cudaStream_t s) {
  const size_t total = size_t(batch) * seq * heads * (headDim - rotaryDim / 2);
  if (total == 0) return;
  LS_DISPATCH_FLOAT(t, T, {
    auto o = static_cast<T *>(out);
    auto i = static_cast<const T *>(x);
    constexpr int V = 8, HG = 4;  // 8 pairs: 16-byte activation packs in bf16/f16, two in f32
    const int64_t half = rotaryDim / 2, packsPerHalf = half / V, headGroups = (heads + HG - 1) / HG;
    const bool packed = rotaryDim == headDim && half % V == 0 && size_t(batch) * seq * heads * headDim < (size_t(1) << 32) &&
                        aligned_to(out, 16) && aligned_to(x, 16) && aligned_to(cos, 16) && aligned_to(sin, 16);
    if (packed) {
      const size_t work = size_t(batch) * seq * headGroups * packsPerHalf;
      rotary_packed<T, V, HG><<<grid_for(work, kBlock), kBlock, 0, s>>>(
          o, i, cos, sin, uint32_t(work), uint32_t(heads), uint32_t(seq), uint32_t(half), uint32_t(packsPerHalf),
          uint32_t(headGroups), tableShared);
    } else if (size_t(batch) * seq * heads * headDim < (size_t(1) << 32))
      rotary_kernel<T, uint32_t><<<grid_for(total, kBlock), kBlock, 0, s>>>(
          o, i, cos, sin, uint32_t(total), uint32_t(heads), uint32_t(seq), uint32_t(headDim), uint32_t(rotaryDim),
          tableShared);
    else
      rotary_kernel<T, uint64_t><<<grid_for(total, kBlock), kBlock, 0, s>>>(
          o, i, cos, sin, uint64_t(total), uint64_t(heads), uint64_t(seq), uint64_t(headDim), uint64_t(rotaryDim),
          tableShared);
  });
  LS_CHECK_LAUNCH();
}

void launch_rope_table(float *cos, float *sin, const float *positions, const float *invFreq, const int32_t *rowOf,
                       int64_t seq, int64_t half, cudaStream_t s) {
  const size_t n = size_t(seq) * half;
  if (n == 0) return;
  rope_table_kernel<<<grid_for(n, kBlock), kBlock, 0, s>>>(cos, sin, positions, invFreq, rowOf, uint32_t(seq),
                                                          uint32_t(half));
  LS_CHECK_LAUNCH();
}

void launch_embedding(void *out, const void *table, ET t, const int32_t *ids, int64_t nIds, int64_t vocab,
                      int64_t dim, cudaStream_t s) {
  const size_t rowBytes = dim * et_bytes(t);
  if (nIds == 0 || rowBytes == 0) return;
  size_t unit = 16;
  while (unit > 1 && (rowBytes % unit || !aligned_to(out, unit) || !aligned_to(table, unit))) unit >>= 1;
  const int64_t rowUnits = rowBytes / unit;
  const size_t n = size_t(nIds) * rowUnits;
  const unsigned g = grid_for(n, kBlock);
  switch (unit) {
    case 16:
      embedding_kernel<uint4><<<g, kBlock, 0, s>>>(static_cast<uint4 *>(out), static_cast<const uint4 *>(table), ids,
                                                   n, rowUnits, vocab);
      break;
    case 8:
      embedding_kernel<uint2><<<g, kBlock, 0, s>>>(static_cast<uint2 *>(out), static_cast<const uint2 *>(table), ids,
                                                   n, rowUnits, vocab);
      break;
    case 4:
      embedding_kernel<uint32_t><<<g, kBlock, 0, s>>>(static_cast<uint32_t *>(out),
                                                      static_cast<const uint32_t *>(table), ids, n, rowUnits, vocab);
      break;
    default:
      embedding_kernel<uint16_t><<<g, kBlock, 0, s>>>(static_cast<uint16_t *>(out),
                                                      static_cast<const uint16_t *>(table), ids, n, rowUnits, vocab);
  }
  LS_CHECK_LAUNCH();
}

void launch_embedding_bag(void *out, const void *table, ET t, const int32_t *ids, int64_t nIds, const int32_t *offsets,
                          int64_t bags, int64_t vocab, int64_t dim, bool mean, cudaStream_t s) {
  const size_t n = size_t(bags) * dim;
  if (n == 0) return;
  LS_DISPATCH_FLOAT(t, T, {
    embedding_bag_kernel<T><<<grid_for(n, kBlock), kBlock, 0, s>>>(
        static_cast<T *>(out), static_cast<const T *>(table), ids, nIds, offsets, n, dim, vocab, mean);
  });
  LS_CHECK_LAUNCH();
}

void take_embedding_error(cudaStream_t s) {
  unsigned long long bad = 0;
  LS_CUDA_CHECK(cudaMemcpyFromSymbolAsync(&bad, g_badEmbedding, sizeof bad, 0, cudaMemcpyDeviceToHost, s));
  LS_CUDA_CHECK(cudaStreamSynchronize(s));
  if (!bad) return;
  const unsigned long long none = 0;
  LS_CUDA_CHECK(cudaMemcpyToSymbolAsync(g_badEmbedding, &none, sizeof none, 0, cudaMemcpyHostToDevice, s));
  LS_CUDA_CHECK(cudaStreamSynchronize(s));
  throw std::invalid_argument("embedding: id " + std::to_string(static_cast<int32_t>(bad >> 32)) +
                              " is outside the vocabulary of " + std::to_string(static_cast<uint32_t>(bad)));
}

void launch_read_slice(void *out, const void *x, size_t elementBytes, int64_t outer, int64_t xDim, int64_t outDim,
                       int64_t inner, int64_t start, cudaStream_t s) {
  const size_t width = outDim * inner * elementBytes;
  if (outer == 0 || width == 0) return;
  const size_t pitch = xDim * inner * elementBytes;
  LS_CUDA_CHECK(cudaMemcpy2DAsync(out, width, static_cast<const char *>(x) + start * inner * elementBytes, pitch,
                                  width, outer, cudaMemcpyDeviceToDevice, s));
}

void launch_write_slice(void *out, const void *x, size_t elementBytes, int64_t outer, int64_t outDim, int64_t xDim,
                        int64_t inner, int64_t start, cudaStream_t s) {
  const size_t width = xDim * inner * elementBytes;
  if (outer == 0 || width == 0) return;
  const size_t pitch = outDim * inner * elementBytes;
  LS_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char *>(out) + start * inner * elementBytes, pitch, x, width, width,
                                  outer, cudaMemcpyDeviceToDevice, s));
}

void launch_permute(void *out, const void *x, size_t elementBytes, int rank, const int64_t *shape, const int *perm,
                    cudaStream_t s) {
  LS_REQUIRE(rank <= kMaxRank, "permute: rank above 8");
  int64_t xStride[kMaxRank];
  int64_t acc = 1;
  for (int d = rank - 1; d >= 0; d--) xStride[d] = acc, acc *= shape[d];
  // Output axes in order, merged when they are also adjacent (and in order) in x; size-1 axes dropped.
  Gather g{};
  int lastAxis = -2;
  for (int i = 0; i < rank; i++) {
    const int p = perm[i];
    if (shape[p] == 1) continue;
    if (g.rank > 0 && p == lastAxis + 1) {
      g.shape[g.rank - 1] *= static_cast<uint32_t>(shape[p]);
      g.stride[g.rank - 1] = xStride[p];
    } else {
      g.shape[g.rank] = static_cast<uint32_t>(shape[p]);
      g.stride[g.rank] = xStride[p];
      g.rank++;
    }
    lastAxis = p;
  }
  if (g.rank == 0) g.shape[0] = 1, g.stride[0] = 1, g.rank = 1;
  run_gather(out, x, elementBytes, g, g.stride[g.rank - 1] == 1, s);
}

void launch_flip(void *out, const void *x, size_t elementBytes, int64_t outer, int64_t dim, int64_t inner,
                 cudaStream_t s) {
  if (outer * dim * inner == 0) return;
  Gather g{};
  g.rank = 3;
  g.shape[0] = static_cast<uint32_t>(outer), g.stride[0] = dim * inner;
  g.shape[1] = static_cast<uint32_t>(dim), g.stride[1] = -inner;
  g.shape[2] = static_cast<uint32_t>(inner), g.stride[2] = 1;
  run_gather(out, static_cast<const char *>(x) + (dim - 1) * inner * elementBytes, elementBytes, g, true, s);
}

size_t reduce_workspace_bytes(int64_t outer, int64_t dim, int64_t inner) {
  const int64_t splits = reduce_splits(outer, dim, inner);
  return splits > 1 ? sizeof(float) * size_t(splits * outer * inner) : 0;
}

void launch_reduce(void *out, const void *x, ET t, ReduceOp op, int64_t outer, int64_t dim, int64_t inner,
                   void *workspace, cudaStream_t s) {
  if (outer * inner == 0) return;
  const int64_t splits = reduce_splits(outer, dim, inner);
  LS_DISPATCH_FLOAT(t, T, {
    if (splits > 1) {
      float *partial = static_cast<float *>(workspace);
      const int64_t chunk = (dim + splits - 1) / splits;
      reduce_split_kernel<T><<<grid_for(size_t(splits * outer * inner), kBlock), kBlock, 0, s>>>(
          partial, static_cast<const T *>(x), outer, dim, inner, chunk, splits, op);
      reduce_splits_kernel<T><<<grid_for(size_t(outer * inner), kBlock), kBlock, 0, s>>>(
          static_cast<T *>(out), partial, outer * inner, splits, dim, op);
    } else if (inner == 1)
      reduce_rows_kernel<T><<<static_cast<unsigned>(outer), 256, 0, s>>>(static_cast<T *>(out),
                                                                         static_cast<const T *>(x), dim, op);
    else
      reduce_middle_kernel<T><<<grid_for(outer * inner, kBlock), kBlock, 0, s>>>(
          static_cast<T *>(out), static_cast<const T *>(x), outer, dim, inner, op);
  });
  LS_CHECK_LAUNCH();
}

void launch_argmax(int32_t *out, const void *x, ET t, int64_t rows, int64_t dim, cudaStream_t s) {
  if (rows == 0) return;
  LS_DISPATCH_FLOAT(t, T, {
    argmax_kernel<T><<<static_cast<unsigned>(rows), 256, 0, s>>>(out, static_cast<const T *>(x), dim);
  });
  LS_CHECK_LAUNCH();
}
