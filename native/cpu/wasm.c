/*
 * The WebAssembly entry points (src/backends/cpu/wasm.ts calls them). Pointers are byte offsets into this
 * module's memory: the caller copies operands in above __heap_base, calls, and copies the results out.
 */
#include "gemm.h"

#define EXPORT(name) __attribute__((export_name(#name)))

EXPORT(pack_floats) size_t pack_floats(void) { return ls_pack_floats_base(); }

EXPORT(gemm) void gemm(const float *a, ptrdiff_t aRow, ptrdiff_t aCol, const void *b, ptrdiff_t bRow, ptrdiff_t bCol,
                       int bType, float *c, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                       const float *bias, int accumulate, float *pack) {
  const ls_gemm_t g = {a, aRow, aCol, b, bRow, bCol, bType, c, ldc, m, n, k, alpha, bias, accumulate};
  ls_gemm_base(&g, pack);
}

EXPORT(softmax_rows) void softmax_rows(float *s, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t width, const int32_t *lo,
                                       const int32_t *hi) {
  ls_softmax_rows_base(s, rows, ld, width, lo, hi);
}

EXPORT(unary) int unary(int code, const float *src, float *dst, ptrdiff_t n) {
  return ls_unary_base(code, src, dst, n);
}

EXPORT(binary) void binary(int code, const float *a, const float *b, float *dst, ptrdiff_t rank, const int32_t *dims) {
  ls_binary_base(code, a, b, dst, rank, dims);
}

EXPORT(rms_norm) void rms_norm(float *out, const float *x, const float *w, const float *gate, ptrdiff_t rows,
                               ptrdiff_t dim, ptrdiff_t group, float eps, int normBeforeGate) {
  ls_rms_norm_base(out, x, w, gate, rows, dim, group, eps, normBeforeGate);
}

EXPORT(layer_norm) void layer_norm(float *out, const float *x, const float *w, const float *b, ptrdiff_t rows,
                                   ptrdiff_t dim, float eps) {
  ls_layer_norm_base(out, x, w, b, rows, dim, eps);
}

EXPORT(conv1d) void conv1d(float *y, const float *x, const float *w, const float *bias, const float *state,
                           ptrdiff_t batch, ptrdiff_t len, ptrdiff_t C, ptrdiff_t W, int silu) {
  ls_conv1d_base(y, x, w, bias, state, batch, len, C, W, silu);
}

/* The SSD scan over the (batch, head) pairs [lo, hi); scratch holds ssd_scratch_floats(…) floats. */
EXPORT(ssd_scratch_floats) size_t ssd_scratch_floats(ptrdiff_t batch, ptrdiff_t len, ptrdiff_t heads, ptrdiff_t headDim,
                                                     ptrdiff_t groups, ptrdiff_t dState, ptrdiff_t chunkSize) {
  const ls_ssd_t d = {.batch = batch, .len = len, .heads = heads, .headDim = headDim, .groups = groups,
                      .dState = dState, .chunkSize = chunkSize};
  return ls_ssd_scratch_floats_base(&d);
}

EXPORT(ssd) void ssd(const float *x, const float *dt, const float *A, const float *B, const float *C, const float *D,
                     const float *s0, float *y, float *sOut, ptrdiff_t batch, ptrdiff_t len, ptrdiff_t heads,
                     ptrdiff_t headDim, ptrdiff_t groups, ptrdiff_t dState, ptrdiff_t chunkSize, ptrdiff_t lo,
                     ptrdiff_t hi, float *scratch, float *pack) {
  const ls_ssd_t d = {x, dt, A, B, C, D, s0, y, sOut, batch, len, heads, headDim, groups, dState, chunkSize};
  ls_ssd_base(&d, lo, hi, scratch, pack);
}

/* The SSD scan's backward over the (batch, group) pairs [lo, hi); scratch holds ssd_grad_scratch_floats(…) floats. */
EXPORT(ssd_grad_scratch_floats) size_t ssd_grad_scratch_floats(ptrdiff_t batch, ptrdiff_t len, ptrdiff_t heads,
                                                               ptrdiff_t headDim, ptrdiff_t groups, ptrdiff_t dState,
                                                               ptrdiff_t chunkSize) {
  const ls_ssd_grad_t g = {.s = {.batch = batch, .len = len, .heads = heads, .headDim = headDim, .groups = groups,
                                 .dState = dState, .chunkSize = chunkSize}};
  return ls_ssd_grad_scratch_floats_base(&g);
}

EXPORT(ssd_grad) void ssd_grad(const float *x, const float *dt, const float *A, const float *B, const float *C,
                               const float *D, const float *s0, const float *dy, const float *dStateOut, float *dx,
                               float *ddt, float *dB, float *dC, float *dA, float *dD, float *dState, ptrdiff_t batch,
                               ptrdiff_t len, ptrdiff_t heads, ptrdiff_t headDim, ptrdiff_t groups, ptrdiff_t dState_,
                               ptrdiff_t chunkSize, ptrdiff_t lo, ptrdiff_t hi, float *scratch, float *pack) {
  const ls_ssd_grad_t g = {{x, dt, A, B, C, D, s0, NULL, NULL, batch, len, heads, headDim, groups, dState_, chunkSize},
                           dy, dStateOut, dx, ddt, dB, dC, dA, dD, dState};
  ls_ssd_grad_base(&g, lo, hi, scratch, pack);
}

/* The causal conv1d's backward over batch rows [lo, hi). */
EXPORT(conv1d_grad) void conv1d_grad(const float *x, const float *w, const float *bias, const float *state,
                                     const float *dy, const float *dStateOut, float *dx, float *dState, float *dw,
                                     float *db, ptrdiff_t batch, ptrdiff_t len, ptrdiff_t C, ptrdiff_t W, int silu,
                                     ptrdiff_t lo, ptrdiff_t hi) {
  const ls_conv_grad_t g = {x, w, bias, state, dy, dStateOut, dx, dState, dw, db, batch, len, C, W, silu};
  ls_conv1d_grad_base(&g, lo, hi);
}
