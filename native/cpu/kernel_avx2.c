/* The GEMM kernel for avx2 (selected at run time by CPUID). */
#include "gemm.h"
#define SUFFIX avx2
#define VW 8
#define MR 6
#define NV 2
#include "kernel.inc"
