#include "blas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "common.h"

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

void check(const CublasLtApi &api, cublasStatus_t st, const char *what) {
  if (st != 0)
    throw std::runtime_error(std::string("cuBLASLt ") + what + " failed: " +
                             (api.getStatusString ? api.getStatusString(st) : std::to_string(st)));
}

/** dlopen by name (LD_LIBRARY_PATH, ld.so cache), then in $CUDA_HOME/lib64 and /usr/local/cuda/lib64. */
void *open_library(const std::vector<std::string> &names, std::string &found, std::string &tried) {
  std::vector<std::string> dirs{""};
  if (const char *home = std::getenv("CUDA_HOME")) dirs.push_back(std::string(home) + "/lib64/");
  dirs.push_back("/usr/local/cuda/lib64/");
  for (const auto &name : names)
    for (const auto &dir : dirs) {
      const std::string path = dir + name;
      if (void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
        found = path;
        return h;
      }
      tried += (tried.empty() ? "" : ", ") + path;
    }
  return nullptr;
}

template <typename F>
void bind(void *lib, F &fn, const char *symbol) {
  fn = reinterpret_cast<F>(dlsym(lib, symbol));
  if (!fn) throw std::runtime_error(std::string("cuBLASLt has no symbol ") + symbol);
}

cudaDataType_t data_type(ET t) {
  switch (t) {
    case ET::F32:
      return CUDA_R_32F;
    case ET::BF16:
      return CUDA_R_16BF;
    case ET::F16:
      return CUDA_R_16F;
    default:
      throw std::invalid_argument("matmul: dtype must be f32, bf16 or f16");
  }
}

/** Largest power of two ≤ 256 that divides the address (cuBLASLt's alignment preferences). */
uint32_t alignment(const void *p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al) al >>= 1;
  return al;
}

}  // namespace

Blas::Blas() {
  std::string tried;
  void *lib = open_library({"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}, library_, tried);
  if (!lib)
    throw std::runtime_error("cuBLASLt not found (tried " + tried +
                             "). Install cuBLAS for CUDA 12 or 13 (e.g. the toolkit, or pip nvidia-cublas) and "
                             "add its lib directory to LD_LIBRARY_PATH or set CUDA_HOME.");
  bind(lib, api_.create, "cublasLtCreate");
  bind(lib, api_.matmulDescCreate, "cublasLtMatmulDescCreate");
  bind(lib, api_.matmulDescDestroy, "cublasLtMatmulDescDestroy");
  bind(lib, api_.matmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
  bind(lib, api_.matrixLayoutCreate, "cublasLtMatrixLayoutCreate");
  bind(lib, api_.matrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
  bind(lib, api_.matrixLayoutSetAttribute, "cublasLtMatrixLayoutSetAttribute");
  bind(lib, api_.preferenceCreate, "cublasLtMatmulPreferenceCreate");
  bind(lib, api_.preferenceDestroy, "cublasLtMatmulPreferenceDestroy");
  bind(lib, api_.preferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
  bind(lib, api_.algoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
  bind(lib, api_.matmul, "cublasLtMatmul");
  bind(lib, api_.getStatusString, "cublasLtGetStatusString");
  check(api_, api_.create(&handle_), "create");
  LS_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
}

Blas::Plan &Blas::plan(const MatmulArgs &g) {
  const uint32_t alA = alignment(g.b), alB = alignment(g.a), alC = alignment(g.out);
  std::string key;
  for (int64_t v : {int64_t(g.t), int64_t(g.outT), g.batch, g.m, g.n, g.k, int64_t(g.transA), int64_t(g.transB),
                    int64_t(g.bBatched), int64_t(g.bias != nullptr), int64_t(alA), int64_t(alB), int64_t(alC)})
    key += std::to_string(v) + ",";
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  if (plans_.size() >= kMaxPlans) {  // descriptors are read when a matmul is enqueued, not after
    for (auto &[k, p] : plans_) destroy(p);
    plans_.clear();
  }

  // Row-major C[m,n] = A[m,k]·B[k,n] is column-major Cᵀ[n,m] = Bᵀ·Aᵀ: cuBLASLt's A is our B and vice versa.
  const cudaDataType_t type = data_type(g.t);
  Plan p{};
  check(api_, api_.matmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmulDescCreate");
  const int32_t opA = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N, opB = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  check(api_, api_.matmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA), "set transA");
  check(api_, api_.matmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB), "set transB");
  if (g.bias) {
    const int32_t epi = CUBLASLT_EPILOGUE_BIAS;
    check(api_, api_.matmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "epilogue");
  }
  const uint64_t n = g.n, m = g.m, k = g.k;
  check(api_, g.transB ? api_.matrixLayoutCreate(&p.a, type, k, n, k) : api_.matrixLayoutCreate(&p.a, type, n, k, n),
        "layout A");
  check(api_, g.transA ? api_.matrixLayoutCreate(&p.b, type, m, k, m) : api_.matrixLayoutCreate(&p.b, type, k, m, k),
        "layout B");
  check(api_, api_.matrixLayoutCreate(&p.c, data_type(g.outT), n, m, n), "layout C");
  if (g.batch > 1) {
    const int32_t count = static_cast<int32_t>(g.batch);
    const int64_t strideA = g.bBatched ? g.k * g.n : 0, strideB = g.m * g.k, strideC = g.m * g.n;
    for (auto [layout, stride] : {std::pair{p.a, strideA}, {p.b, strideB}, {p.c, strideC}}) {
      check(api_, api_.matrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
            "batch count");
      check(api_,
            api_.matrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
            "batch stride");
    }
  }
  cublasLtMatmulPreference_t pref;
  check(api_, api_.preferenceCreate(&pref), "preferenceCreate");
  const uint64_t ws = kWorkspaceBytes;
  api_.preferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  api_.preferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alA, sizeof alA);
  api_.preferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alB, sizeof alB);
  api_.preferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alC, sizeof alC);
  api_.preferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alC, sizeof alC);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st = api_.algoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  api_.preferenceDestroy(pref);
  if (st != 0 || found == 0) {
    destroy(p);
    throw std::runtime_error("cuBLASLt has no algorithm for matmul " + key + " (status " + std::to_string(st) + ")");
  }
  p.algo = result.algo;
  p.workspace = result.workspaceSize;
  return plans_.emplace(key, p).first->second;
}

void Blas::destroy(Plan &p) {
  api_.matrixLayoutDestroy(p.a);
  api_.matrixLayoutDestroy(p.b);
  api_.matrixLayoutDestroy(p.c);
  api_.matmulDescDestroy(p.desc);
}

void Blas::matmul(const MatmulArgs &args, cudaStream_t stream) {
  MatmulArgs g = args;
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  // A shared weight with a plain A: the batches are just more rows of one GEMM.
  if (!g.bBatched && !g.transA && g.batch > 1) g.m *= g.batch, g.batch = 1;
  Plan &p = plan(g);
  if (g.bias)
    check(api_, api_.matmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias),
          "bias pointer");
  const float beta = 0.f;
  check(api_,
        api_.matmul(handle_, p.desc, &g.alpha, g.b, p.a, g.a, p.b, &beta, g.out, p.c, g.out, p.c, &p.algo, workspace_,
                    kWorkspaceBytes, stream),
        "matmul");
}
