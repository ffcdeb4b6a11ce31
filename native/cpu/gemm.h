/*
 * The f32 GEMM every fast CPU path shares (native addon and WebAssembly):
 *   C[i, j] = alpha·Σ_t A[i, t]·B[t, j] + bias[j]   (C[i, j] += … when accumulate)
 * with A[i, t] = a[i·aRow + t·aCol], B[t, j] = b[t·bRow + j·bCol] (f32, bf16 or f16 elements, converted to
 * f32 as they are read) and C[i, j] = c[i·ldc + j]: the semantics of gemm.ts, the TypeScript reference.
 */
#ifndef LONGSHOT_GEMM_H
#define LONGSHOT_GEMM_H
#include <stddef.h>
#include <stdint.h>

enum { LS_F32 = 0, LS_BF16 = 1, LS_F16 = 2 };

typedef struct {
  const float *a;
  ptrdiff_t aRow, aCol;
  const void *b;
  ptrdiff_t bRow, bCol;
  int bType;
  float *c;
  ptrdiff_t ldc;
  ptrdiff_t m, n, k;
  float alpha;
  const float *bias; /* NULL: none */
  int accumulate;
} ls_gemm_t;

static inline float ls_bits_f32(uint32_t u) {
  union { uint32_t u; float f; } x = {u};
  return x.f;
}
static inline float bf16_to_f32(uint16_t h) { return ls_bits_f32((uint32_t)h << 16); }
static inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) { /* zero or subnormal: m·2⁻²⁴ */
    const float f = (float)m * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  if (e == 31) return ls_bits_f32(sign | 0x7f800000u | (m << 13));
  return ls_bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

/* The SSD scan's operands (SsdDesc in src/runtime/backend.ts; all f32, D, s0 and sOut may be NULL). */
typedef struct {
  const float *x, *dt, *A, *B, *C, *D, *s0;
  float *y, *sOut;
  ptrdiff_t batch, len, heads, headDim, groups, dState, chunkSize;
} ls_ssd_t;

/* The SSD scan's backward: the forward's operands (y, sOut unused), dy and dStateOut (may be NULL), and the
 * gradients (dA, dD: [batch, heads] sums per pair; dState may be NULL). All f32. */
typedef struct {
  ls_ssd_t s;
  const float *dy, *dStateOut;
  float *dx, *ddt, *dB, *dC, *dA, *dD, *dState;
} ls_ssd_grad_t;

/* The causal conv1d's backward over batch rows: inputs as the forward's, dy and dStateOut (may be NULL); dx and
 * dState (may be NULL), and per batch row the weight and bias gradients dw [batch, C, W], db [batch, C]. W ≤ 16. */
typedef struct {
  const float *x, *w, *bias, *state, *dy, *dStateOut;
  float *dx, *dState, *dw, *db;
  ptrdiff_t batch, len, C, W;
  int silu;
} ls_conv_grad_t;

/* e^x in double precision without libm (the wasm build has none): 2^n·e^r, |r| ≤ ln2/2, a degree-13 series. */
static inline double ls_exp64(double x) {
  if (x < -745.0) return 0.0;
  if (x > 709.0) x = 709.0;
  const double n = __builtin_floor(x * 1.4426950408889634 + 0.5);
  const double r = (x - n * 0.693147180369123816490) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;
  const double inv[] = {479001600.0, 39916800.0, 3628800.0, 362880.0, 40320.0, 5040.0, 720.0, 120.0, 24.0,
                        6.0,         2.0,        1.0,       1.0};
  for (int i = 0; i < 13; i++) p = p * r + 1.0 / inv[i];
  int e = (int)n;
  double scale = 1.0;
  if (e < -1022) { /* subnormal results: scale in two steps */
    scale = 2.2250738585072014e-308;
    e += 1022;
  }
  union { uint64_t u; double d; } bits = {(uint64_t)(e + 1023) << 52};
  return p * bits.d * scale;
}

/* One kernel set per instruction set (kernel.inc); `pack` holds ls_pack_floats_* floats. */
#define LS_DECLARE(SUFFIX)                                                                                    \
  size_t ls_pack_floats_##SUFFIX(void);                                                                      \
  void ls_gemm_##SUFFIX(const ls_gemm_t *g, float *pack);                                                    \
  void ls_softmax_rows_##SUFFIX(float *s, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t width, const int32_t *lo,  \
                                const int32_t *hi);                                                         \
  int ls_unary_##SUFFIX(int code, const float *src, float *dst, ptrdiff_t n);                                \
  void ls_binary_##SUFFIX(int code, const float *a, const float *b, float *dst, ptrdiff_t rank,             \
                          const int32_t *dims);                                                              \
  void ls_rms_norm_##SUFFIX(float *out, const float *x, const float *w, const float *gate, ptrdiff_t rows,   \
                            ptrdiff_t dim, ptrdiff_t group, float eps, int normBeforeGate);                  \
  void ls_layer_norm_##SUFFIX(float *out, const float *x, const float *w, const float *b, ptrdiff_t rows,    \
                              ptrdiff_t dim, float eps);                                                     \
  void ls_conv1d_##SUFFIX(float *y, const float *x, const float *w, const float *bias, const float *state,   \
                          ptrdiff_t batch, ptrdiff_t len, ptrdiff_t C, ptrdiff_t W, int silu);               \
  size_t ls_ssd_scratch_floats_##SUFFIX(const ls_ssd_t *d);                                                  \
  void ls_ssd_##SUFFIX(const ls_ssd_t *d, ptrdiff_t lo, ptrdiff_t hi, float *scratch, float *pack);        \
  size_t ls_ssd_grad_scratch_floats_##SUFFIX(const ls_ssd_grad_t *g);                                        \
  void ls_ssd_grad_##SUFFIX(const ls_ssd_grad_t *g, ptrdiff_t lo, ptrdiff_t hi, float *scratch, float *pack);  \
  void ls_conv1d_grad_##SUFFIX(const ls_conv_grad_t *g, ptrdiff_t lo, ptrdiff_t hi);
LS_DECLARE(base)
LS_DECLARE(avx2)
LS_DECLARE(avx512)
LS_DECLARE(neon)

/* One instruction set's kernels as a table (the addon picks one at load; native/cpu/check.c tests them all). */
typedef struct {
  const char *name;
  size_t (*pack_floats)(void);
  void (*gemm)(const ls_gemm_t *, float *);
  void (*softmax_rows)(float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, const int32_t *, const int32_t *);
  int (*unary)(int, const float *, float *, ptrdiff_t);
  void (*binary)(int, const float *, const float *, float *, ptrdiff_t, const int32_t *);
  void (*rms_norm)(float *, const float *, const float *, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, float, int);
  void (*layer_norm)(float *, const float *, const float *, const float *, ptrdiff_t, ptrdiff_t, float);
  void (*conv1d)(float *, const float *, const float *, const float *, const float *, ptrdiff_t, ptrdiff_t,
                 ptrdiff_t, ptrdiff_t, int);
  size_t (*ssd_scratch_floats)(const ls_ssd_t *);
  void (*ssd)(const ls_ssd_t *, ptrdiff_t, ptrdiff_t, float *, float *);
  size_t (*ssd_grad_scratch_floats)(const ls_ssd_grad_t *);
  void (*ssd_grad)(const ls_ssd_grad_t *, ptrdiff_t, ptrdiff_t, float *, float *);
  void (*conv1d_grad)(const ls_conv_grad_t *, ptrdiff_t, ptrdiff_t);
} ls_kernels_t;

#define LS_KERNELS(S)                                                                                        \
  {#S,          ls_pack_floats_##S, ls_gemm_##S,   ls_softmax_rows_##S,         ls_unary_##S, ls_binary_##S,   \
   ls_rms_norm_##S, ls_layer_norm_##S, ls_conv1d_##S, ls_ssd_scratch_floats_##S, ls_ssd_##S,                 \
   ls_ssd_grad_scratch_floats_##S, ls_ssd_grad_##S, ls_conv1d_grad_##S}

#endif
