// Backward kernels, fused losses and the AdamW step (the optional Backend methods of src/runtime/grad-ops.ts).
// Layouts and semantics follow the TypeScript reference in src/backends/cpu/grad-*.ts, loss.ts and optim.ts;
// activations have the element type `et` (f32, bf16, f16), parameter gradients are f32, math is f32.
// The attention backward streams tiles of the other side past blocks of 8 rows (f32 SIMT, no tensor cores); the SSD
// backward cuts the sequence into chunks (their boundary states and gradients by a short pass over chunks, then
// every chunk reversed in parallel).
#pragma once

#include "common.h"
#include "conv1d.h"
#include "kernels.h"
#include "ssd.h"

/**
 * Scratch bytes for ssd_scan_backward: the state and its gradient before every chunk, f32 sums of dB/dC.
 * `least`: the smallest workspace that works (chunks of max(64, ⌈√len⌉) tokens: longer chains, same results);
 * any size between works.
 */
size_t ssd_scan_backward_workspace_bytes(const SsdDims &d, bool least = false);

/**
 * Gradients of ssd_scan given dy (x's layout) and dStateOut (f32 or null). dx, dB, dC have type `et`; ddt, dA,
 * dD, dState are f32 (dD, dState may be null). D has type `dEt` (or is null).
 */
void ssd_scan_backward(void *dx, float *ddt, float *dA, void *dB, void *dC, float *dD, float *dState, const void *dy,
                       const float *dStateOut, const void *x, const float *dt, const float *A, const void *B,
                       const void *C, const void *D, ET dEt, const float *state, const SsdDims &d, ET et,
                       void *workspace, size_t workspaceBytes, cudaStream_t s);

/** Scratch bytes for conv1d_backward: dW's per-split partial sums over the rows. */
size_t conv1d_backward_workspace_bytes(const Conv1dDims &d);

/**
 * Gradients of conv1d: dx and dState (may be null) of type `et`, dWeight [channels, width] and dBias (may be null)
 * f32, from dy and dStateOut (type `et`, may be null). weight and bias have type `wEt`. width ≤ 16.
 */
void conv1d_backward(void *dx, float *dWeight, float *dBias, void *dState, const void *dy, const void *dStateOut,
                     const void *x, const void *weight, const void *bias, const void *state, const Conv1dDims &d,
                     ET et, ET wEt, void *workspace, cudaStream_t s);

struct AttnGradDims {
  int batch, sq, skv, kvLength, hq, hkv, d, dv;
  float scale;
  /** Leading dim of the f32 mask: 0 (none), 1 or batch. */
  int maskBatch;
};

/** Scratch bytes for attention_backward (key and query ranges, per-row log-sum-exp and dO·O). */
size_t attention_backward_workspace_bytes(const AttnGradDims &d);

/**
 * Attention backward (d, dv ≤ 256). The workspace starts with the ranges, already on the device (the caller copies
 * them in, through pinned memory: a pageable copy would wait for the stream): each query's key range [lo, hi)
 * (2·sq ints: kvLength, causal offset and segments already applied), then each key's queries [lo, hi) that see it
 * (2·skv ints). dq, dk, dv, dOut, q, k, v, out share type `et`.
 */
void attention_backward(void *dq, void *dk, void *dv, const void *dOut, const void *q, const void *k, const void *v,
                        const void *out, const float *mask, const AttnGradDims &d, ET et, void *workspace,
                        size_t workspaceBytes, cudaStream_t s);

/** RMSNorm backward; weight of type wEt (or null), gate and dGate of type et (or null); dWeight f32 (or null). */
void rms_norm_backward(void *dx, float *dWeight, void *dGate, const void *dy, const void *x, const void *weight,
                       ET wEt, const void *gate, const void *dSum, int64_t rows, int64_t dim, int64_t groupSize,
                       float eps, bool normBeforeGate, ET et, cudaStream_t s);

void layer_norm_backward(void *dx, float *dWeight, float *dBias, const void *dy, const void *x, const void *weight,
                         ET wEt, const void *dSum, int64_t rows, int64_t dim, float eps, ET et, cudaStream_t s);

/** dTable [vocab, dim] f32 = Σ_i dOut[i] at row ids[i]; ids outside the vocabulary are skipped. */
void embedding_backward(float *dTable, const void *dOut, ET et, const int32_t *ids, int64_t n, int64_t vocab,
                        int64_t dim, cudaStream_t s);

/** Scratch bytes for cross_entropy and kl_top_k (one counter). */
constexpr size_t kLossWorkspaceBytes = 256;

/** Mean cross-entropy into loss (f32 scalar); dLogits (type et) may be null. A bad target gives a NaN loss. */
void cross_entropy(float *loss, void *dLogits, const void *logits, ET et, const int32_t *targets, int64_t rows,
                   int64_t vocab, int ignoreIndex, float gradScale, void *workspace, cudaStream_t s);

/** Top-k KL(teacher ‖ student) renormalised over each row's ids ≥ 0 (grad-ops.klTopK). */
void kl_top_k(float *loss, void *dLogits, const void *logits, ET et, const int32_t *ids, const float *teacher,
              int64_t rows, int64_t vocab, int64_t k, float gradScale, void *workspace, cudaStream_t s);

/**
 * One parameter of a multi-tensor AdamW step or sum of squares: f32 tensors of n elements (p, m, v only for
 * AdamW; copy of the step's copy type, may be null), its element offset in the concatenation of all slots
 * (`start`, filled in by the caller in slot order) and its decoupled decay factor 1 − lr·wd.
 */
struct MultiSlot {
  float *p, *m, *v;
  const float *g;
  void *copy;
  int64_t start, n;
  float decay;
};

/** Blocks of a multi-tensor launch over `total` elements (the caller sizes its slot table and partials by it). */
int64_t multi_blocks(int64_t total);

/**
 * AdamW in place over every slot in one launch: slots (device memory, nSlots entries, starts ascending and
 * contiguous) hold f32 param/m/v/grad; each non-null copy (all of type copyEt) receives the new param.
 */
void adamw_multi(const MultiSlot *slots, int nSlots, int64_t total, void *anyCopy, ET copyEt, float lr, float beta1,
                 float beta2, float eps, int64_t step, float gradScale, cudaStream_t s);

/** out (f32, 1 element) = Σ g² over every slot's g; partials: multi_blocks(total) floats of scratch. */
void sum_squares_multi(float *out, const MultiSlot *slots, int nSlots, int64_t total, float *partials,
                       cudaStream_t s);
