// GEMMs through cuBLASLt, opened with dlopen at run time (see cublas_api.h for why).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "cublas_api.h"
#include "kernels.h"

/** Row-major out[batch, m, n] = alpha · A·B (+ bias[n]), as MatmulDesc in src/runtime/backend.ts. */
struct MatmulArgs {
  void *out;
  const void *a, *b, *bias;
  ET t;
  int64_t batch, m, n, k;
  bool transA, transB, bBatched;
  float alpha;
  ET outT;  // the result's type: t, or F32 for bf16/f16 operands (f32 accumulation either way)
};

class Blas {
 public:
  /** Opens libcublasLt (13, then 12) and creates a handle; throws std::runtime_error saying what was tried. */
  Blas();
  void matmul(const MatmulArgs &g, cudaStream_t stream);
  /** The library file that was loaded. */
  const std::string &library() const { return library_; }

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    size_t workspace;
  };
  Plan &plan(const MatmulArgs &g);
  void destroy(Plan &p);

  CublasLtApi api_{};
  cublasLtHandle_t handle_ = nullptr;
  void *workspace_ = nullptr;
  std::string library_;
  // Keyed by shape, dtype, transposes and pointer alignment. Training on data of varied lengths meets new shapes
  // all the time: past kMaxPlans the cache starts over rather than growing without bound.
  std::unordered_map<std::string, Plan> plans_;
  static constexpr size_t kMaxPlans = 4096;
};
