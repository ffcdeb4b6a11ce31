// Launch functions of the addon's own kernels (attention, SSD and conv1d live in attention.h, ssd.h,
// conv1d.h). Raw device pointers point at the first element of each tensor; every function enqueues on
// `stream`, returns at once and throws (CudaError, std::invalid_argument) on failure.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.h"

/** Every storage element type, numbered as the JS side numbers them (src/backends/cuda/addon.ts). */
enum class ET : int { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, U8 = 4 };

size_t et_bytes(ET t);

/** Largest rank the strided kernels (binary broadcast, permute) accept after merging contiguous axes. */
constexpr int kMaxRank = 8;

enum class UnaryOp : int {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Sigmoid, Tanh, Relu, Relu2, Silu, Gelu, GeluTanh, QuickGelu, Softplus
};
enum class BinaryOp : int { Add, Sub, Mul, Div, Max, Min, SiluMul };
enum class ReduceOp : int { Sum, Mean, Max };

// elementwise.cu
void launch_cast(void *out, ET to, const void *x, ET from, size_t n, cudaStream_t s);
void launch_fill(void *out, ET t, size_t n, double value, cudaStream_t s);
void launch_unary(void *out, const void *x, ET t, size_t n, UnaryOp op, cudaStream_t s);
/** Strides are in elements, per axis of outShape (0 on broadcast axes); rank ≤ kMaxRank before merging. */
void launch_binary(void *out, const void *a, const void *b, ET t, BinaryOp op, int rank, const int64_t *shape,
                   const int64_t *aStrides, const int64_t *bStrides, cudaStream_t s);
void launch_affine(void *out, const void *x, ET t, size_t n, float scale, float shift, cudaStream_t s);

// rms_norm.cu, layer_norm.cu — weight/bias/gate have dtype `wt` (the input's dtype or f32). With a `residual`
// (x's dtype and size), `sumOut` receives x + residual rounded to that dtype and the norm is taken of it (null:
// plain norm).
void launch_rms_norm(void *out, const void *x, ET t, const void *weight, ET wt, const void *gate, int64_t rows,
                     int64_t dim, int64_t groupSize, float eps, bool normBeforeGate, const void *residual,
                     void *sumOut, cudaStream_t s);
void launch_layer_norm(void *out, const void *x, ET t, const void *weight, const void *bias, ET wt, int64_t rows,
                       int64_t dim, float eps, const void *residual, void *sumOut, cudaStream_t s);
void launch_softmax(void *out, const void *x, ET t, int64_t rows, int64_t dim, cudaStream_t s);

// layout.cu
void launch_rotary(void *out, const void *x, ET t, const float *cos, const float *sin, int64_t batch, int64_t seq,
                   int64_t heads, int64_t headDim, int64_t rotaryDim, bool tableShared, cudaStream_t s);
/** Rotary tables cos/sin [seq, 2·half] f32: angle(p, j) = positions[rowOf[j]·seq + p]·invFreq[j] (f32). */
void launch_rope_table(float *cos, float *sin, const float *positions, const float *invFreq, const int32_t *rowOf,
                       int64_t seq, int64_t half, cudaStream_t s);
/** Ids outside [0, vocab) give zero rows and are reported by take_embedding_error. */
void launch_embedding(void *out, const void *table, ET t, const int32_t *ids, int64_t nIds, int64_t vocab,
                      int64_t dim, cudaStream_t s);
/**
 * out[r, :] = sum (mean) of table[ids[j], :] for j in [offsets[r], offsets[r+1]), f32 in bag order; bad ids read
 * as zero rows and are reported like embedding's; offsets are clamped to [0, nIds].
 */
void launch_embedding_bag(void *out, const void *table, ET t, const int32_t *ids, int64_t nIds, const int32_t *offsets,
                          int64_t bags, int64_t vocab, int64_t dim, bool mean, cudaStream_t s);
/** Waits for the stream; throws std::invalid_argument naming the first bad embedding id since the last call. */
void take_embedding_error(cudaStream_t s);
/** out[o, :, :] = x[o, start:start+outDim, :] with rows of inner·elementBytes (a strided 2-D copy). */
void launch_read_slice(void *out, const void *x, size_t elementBytes, int64_t outer, int64_t xDim, int64_t outDim,
                       int64_t inner, int64_t start, cudaStream_t s);
void launch_write_slice(void *out, const void *x, size_t elementBytes, int64_t outer, int64_t outDim,
                        int64_t xDim, int64_t inner, int64_t start, cudaStream_t s);
void launch_permute(void *out, const void *x, size_t elementBytes, int rank, const int64_t *shape,
                    const int *perm, cudaStream_t s);
void launch_flip(void *out, const void *x, size_t elementBytes, int64_t outer, int64_t dim, int64_t inner,
                 cudaStream_t s);
/**
 * Scratch bytes launch_reduce needs for [outer, dim, inner] (0 when it needs none): a reduction over a long middle
 * axis into few outputs (a bias gradient: the sum of 30k rows of 192) is split along that axis across blocks.
 */
size_t reduce_workspace_bytes(int64_t outer, int64_t dim, int64_t inner);
void launch_reduce(void *out, const void *x, ET t, ReduceOp op, int64_t outer, int64_t dim, int64_t inner,
                   void *workspace, cudaStream_t s);
void launch_argmax(int32_t *out, const void *x, ET t, int64_t rows, int64_t dim, cudaStream_t s);

// sample.cu
struct SampleParams {
  int64_t rows, vocab;
  float temperature;  // ≤ 0: greedy
  int64_t topK;       // 0: off
  float topP;         // 1: off
  float repetitionPenalty;
  int64_t nPrevious;  // ids per row in `previous` (−1 = padding)
};
/** `uniforms` is a device array of rows floats; `scratch` holds kSampleScratchBytes · rows · vocab bytes. */
constexpr size_t kSampleScratchBytes = 16;
void launch_sample(int32_t *out, const void *logits, ET t, const float *uniforms, const int32_t *previous,
                   void *scratch, const SampleParams &p, cudaStream_t s);
