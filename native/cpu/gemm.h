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

/* One kernel set per instruction set (kernel.inc); `pack` holds ls_pack_floats_* floats. */
#define LS_DECLARE(SUFFIX)                                                                                    \
  size_t ls_pack_floats_##SUFFIX(void);                                                                      \
  void ls_gemm_##SUFFIX(const ls_gemm_t *g, float *pack);                                                    \
  void ls_softmax_rows_##SUFFIX(float *s, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t width, const int32_t *lo,  \
                                const int32_t *hi);
LS_DECLARE(base)
LS_DECLARE(avx2)
LS_DECLARE(avx512)

#endif
