/* The GEMM kernel for avx512 (selected at run time by CPUID). */
#include "gemm.h"
#define SUFFIX avx512
#define VW 16
#define MR 6
#define NV 2
#include "kernel.inc"
