/*
 * The WebAssembly entry points (src/backends/cpu/wasm.ts calls them). Pointers are byte offsets into this
 * module's memory: the caller copies operands in above __heap_base, calls, and copies C out.
 */
#include "gemm.h"

__attribute__((export_name("pack_floats"))) size_t pack_floats(void) { return ls_pack_floats_base(); }

__attribute__((export_name("gemm"))) void gemm(const float *a, ptrdiff_t aRow, ptrdiff_t aCol, const void *b,
                                               ptrdiff_t bRow, ptrdiff_t bCol, int bType, float *c,
                                               ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                                               const float *bias, int accumulate, float *pack) {
  const ls_gemm_t g = {a, aRow, aCol, b, bRow, bCol, bType, c, ldc, m, n, k, alpha, bias, accumulate};
  ls_gemm_base(&g, pack);
}

__attribute__((export_name("softmax_rows"))) void softmax_rows(float *s, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t width,
                                                               const int32_t *lo, const int32_t *hi) {
  ls_softmax_rows_base(s, rows, ld, width, lo, hi);
}
