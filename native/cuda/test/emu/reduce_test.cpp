// launch_reduce (layout.cu) under the CPU emulation against a float64 loop: sum, mean and max over the middle axis
// of [outer, dim, inner] shapes that take each path — rows (inner 1), one thread per output, and the split
// two-pass kernel for a long axis into few outputs (a bias gradient). Prints one line per case and exits 1 on a
// mismatch. Built and run by check.sh layout.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels.h"

// The rest of layout.cu links against these (unused by launch_reduce): host stand-ins.
size_t et_bytes(ET t) { return t == ET::F32 || t == ET::I32 ? 4 : t == ET::U8 ? 1 : 2; }
extern "C" {
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind, cudaStream_t) {
  for (size_t r = 0; r < height; r++)
    std::memmove(static_cast<char *>(dst) + r * dpitch, static_cast<const char *>(src) + r * spitch, width);
  return cudaSuccess;
}
}

int main() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  struct Case {
    int64_t outer, dim, inner;
  };
  const Case cases[] = {{1, 4001, 48}, {3, 900, 20}, {2, 100, 7}, {5, 37, 1}, {4, 3, 700}};
  const ReduceOp ops[] = {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max};
  const char *names[] = {"sum", "mean", "max"};
  int failures = 0;
  for (const Case &c : cases) {
    std::vector<float> x(size_t(c.outer * c.dim * c.inner));
    for (float &v : x) v = u(rng);
    const size_t outputs = size_t(c.outer * c.inner);
    std::vector<unsigned char> ws(reduce_workspace_bytes(c.outer, c.dim, c.inner) + 16, 0xff);
    for (int k = 0; k < 3; k++) {
      std::vector<float> out(outputs, NAN);
      launch_reduce(out.data(), x.data(), ET::F32, ops[k], c.outer, c.dim, c.inner, ws.data(), nullptr);
      double worst = 0, scale = 0;
      std::vector<double> want(outputs);
      for (int64_t o = 0; o < c.outer; o++)
        for (int64_t j = 0; j < c.inner; j++) {
          double acc = ops[k] == ReduceOp::Max ? -INFINITY : 0;
          for (int64_t d = 0; d < c.dim; d++) {
            const double v = x[size_t((o * c.dim + d) * c.inner + j)];
            acc = ops[k] == ReduceOp::Max ? std::max(acc, v) : acc + v;
          }
          want[size_t(o * c.inner + j)] = ops[k] == ReduceOp::Mean ? acc / double(c.dim) : acc;
          scale = std::max(scale, std::fabs(want[size_t(o * c.inner + j)]));
        }
      for (size_t i = 0; i < outputs; i++) {
        const double e = std::fabs(out[i] - want[i]) / (std::fabs(want[i]) + 1e-3 * scale + 1e-30);
        if (!(e <= worst)) worst = e;
      }
      const bool ok = worst <= 1e-4;
      failures += !ok;
      std::printf("%s reduce %s [%ld, %ld, %ld]: max rel err %.2e (workspace %zu B)\n", ok ? "ok  " : "FAIL", names[k],
                  long(c.outer), long(c.dim), long(c.inner), worst, ws.size() - 16);
    }
  }
  std::printf(failures ? "%d mismatches\n" : "launch_reduce matches float64 under the emulation\n", failures);
  return failures ? 1 : 0;
}
