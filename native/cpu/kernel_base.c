/* The GEMM kernel for 16-byte vectors (SSE2, NEON, wasm SIMD). */
#include "gemm.h"
#define SUFFIX base
#define VW 4
#define MR 4
#define NV 2
#include "kernel.inc"
