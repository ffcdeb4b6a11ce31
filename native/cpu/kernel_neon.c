/*
 * The GEMM kernel for arm64 (NEON, always present there): 32 vector registers hold an 8×12 tile (24
 * accumulators), where the base kernel's 4×8 tile suits the 16 registers of SSE2 and wasm.
 */
#include "gemm.h"
#define SUFFIX neon
#define VW 4
#define MR 8
#define NV 3
#include "kernel.inc"
