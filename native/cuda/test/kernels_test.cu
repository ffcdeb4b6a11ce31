// Standalone harness for the attention / SSD / conv1d / norm kernels (runs only on a GPU machine):
//   kernels_test test [family]   correctness against float64 CPU loops (all families, or attention / mass /
//                                ssd / conv1d / norm / decode); exit code 1 on any failure
//   kernels_test bench [out.json|-] [filter]  timings at the model shapes, one JSON record per case
// Build: nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I native/cuda native/cuda/test/kernels_test.cu
//        native/cuda/{attention,attention_mass,attention_sm90,ssd,conv1d,norm,elementwise,decode}.cu -o kernels_test
// (sm_90a: the wgmma kernel of attention_sm90.cu exists only for the arch-specific target; with -arch=sm_80
// it compiles to a stub and attention keeps to flash_fwd.)
#include <cuda_bf16.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attention.h"
#include "attention_mass.h"
#include "attention_sm90.h"
#include "conv1d.h"
#include "decode.h"
#include "kernels.h"
#include "ssd.h"

namespace {

std::mt19937 rng(1234);

std::vector<float> random_vec(size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto &e : v) e = u(rng);
  return v;
}


/** Device copy of host floats stored as `dt`; the host vector is rounded to what the device holds. */
struct Dev {
  void *ptr = nullptr;
  size_t bytes = 0;
  Dev() = default;
  explicit Dev(size_t b) : bytes(b) {
    LS_CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(b, 16)));
    LS_CUDA_CHECK(cudaMemset(ptr, 0, std::max<size_t>(b, 16)));
  }
  Dev(std::vector<float> &host, DT dt) : Dev(host.size() * dt_bytes(dt)) {
    if (dt == DT::F32) {
      LS_CUDA_CHECK(cudaMemcpy(ptr, host.data(), bytes, cudaMemcpyHostToDevice));
    } else {
      std::vector<__nv_bfloat16> h(host.size());
      for (size_t i = 0; i < host.size(); ++i) {
        h[i] = __float2bfloat16_rn(host[i]);
        host[i] = __bfloat162float(h[i]);
      }
      LS_CUDA_CHECK(cudaMemcpy(ptr, h.data(), bytes, cudaMemcpyHostToDevice));
    }
  }
  Dev(const Dev &) = delete;
  Dev &operator=(const Dev &) = delete;
  ~Dev() {
    if (ptr) cudaFree(ptr);
  }
  template <typename T>
  T *as() const {
    return static_cast<T *>(ptr);
  }
  std::vector<float> read(DT dt, size_t n) const {
    std::vector<float> out(n);
    if (dt == DT::F32) {
      LS_CUDA_CHECK(cudaMemcpy(out.data(), ptr, n * 4, cudaMemcpyDeviceToHost));
    } else {
      std::vector<__nv_bfloat16> h(n);
      LS_CUDA_CHECK(cudaMemcpy(h.data(), ptr, n * 2, cudaMemcpyDeviceToHost));
      for (size_t i = 0; i < n; ++i) out[i] = __bfloat162float(h[i]);
    }
    return out;
  }
};

/** max |got − ref| / max |ref| (max abs error when the reference is all zeros). */
double rel_err(const std::vector<float> &got, const std::vector<double> &ref) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::isnan(got[i]) ? INFINITY : std::fabs(got[i] - ref[i]);
    err = std::max(err, e);
    scale = std::max(scale, std::fabs(ref[i]));
  }
  return scale > 0 ? err / scale : err;
}

int failures = 0;
void report(const std::string &name, DT dt, double err) {
  const double tol = dt == DT::F32 ? 1e-4 : 2e-2;
  const bool ok = err <= tol;
  if (!ok) ++failures;
  std::printf("%-4s %-6s %-62s max rel err %.3e (tol %.0e)\n", ok ? "ok" : "FAIL", dt == DT::F32 ? "f32" : "bf16",
              name.c_str(), err, tol);
}

// ---- attention ----------------------------------------------------------------------------------------

struct AttnCase {
  std::string name;
  DT dt;
  int batch, sq, skv, kvLength, hq, hkv, d, dv;
  bool causal;
  int queryOffset;
  std::vector<int> segments;
  int maskBatch;
  bool weights;
  bool fullyMaskedRow;
  bool nanTail = false;  // K/V rows at and beyond kvLength hold NaN (an uninitialised cache): never read
};

void attn_reference(const AttnCase &c, const std::vector<float> &q, const std::vector<float> &k,
                    const std::vector<float> &v, const std::vector<float> &mask, std::vector<double> &out,
                    std::vector<double> &w) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  out.assign(static_cast<size_t>(c.batch) * c.sq * c.hq * c.dv, 0.0);
  w.assign(c.weights ? static_cast<size_t>(c.batch) * c.hq * c.sq * c.kvLength : 0, 0.0);
  std::vector<double> s(c.kvLength);
  for (int b = 0; b < c.batch; ++b)
    for (int h = 0; h < c.hq; ++h) {
      const int hk = h / (c.hq / c.hkv);
      for (int i = 0; i < c.sq; ++i) {
        int lo = 0, hi = c.kvLength;
        if (c.causal) hi = std::min(hi, c.queryOffset + i + 1);
        if (!c.segments.empty()) {
          size_t sgi = 0;
          while (!(c.segments[sgi] <= i && i < c.segments[sgi + 1])) ++sgi;
          lo = c.segments[sgi];
          hi = std::min(hi, c.segments[sgi + 1]);
        }
        double mx = -INFINITY;
        for (int j = 0; j < c.kvLength; ++j) {
          s[j] = -INFINITY;
          if (j < lo || j >= hi) continue;
          double dot = 0;
          for (int e = 0; e < c.d; ++e)
            dot += static_cast<double>(q[((static_cast<size_t>(b) * c.sq + i) * c.hq + h) * c.d + e]) *
                   k[((static_cast<size_t>(b) * c.skv + j) * c.hkv + hk) * c.d + e];
          s[j] = dot * scale;
          if (c.maskBatch) s[j] += mask[((c.maskBatch > 1 ? b : 0) * static_cast<size_t>(c.sq) + i) * c.kvLength + j];
          mx = std::max(mx, s[j]);
        }
        if (mx == -INFINITY) continue;
        double sum = 0;
        for (int j = 0; j < c.kvLength; ++j) sum += s[j] == -INFINITY ? 0 : std::exp(s[j] - mx);
        for (int j = 0; j < c.kvLength; ++j) {
          const double p = s[j] == -INFINITY ? 0 : std::exp(s[j] - mx) / sum;
          if (c.weights) w[((static_cast<size_t>(b) * c.hq + h) * c.sq + i) * c.kvLength + j] = p;
          if (p == 0) continue;
          for (int e = 0; e < c.dv; ++e)
            out[((static_cast<size_t>(b) * c.sq + i) * c.hq + h) * c.dv + e] +=
                p * v[((static_cast<size_t>(b) * c.skv + j) * c.hkv + hk) * c.dv + e];
        }
      }
    }
}

void run_attention_case(const AttnCase &c) {
  auto q = random_vec(static_cast<size_t>(c.batch) * c.sq * c.hq * c.d, -1.5f, 1.5f);
  auto k = random_vec(static_cast<size_t>(c.batch) * c.skv * c.hkv * c.d, -1.5f, 1.5f);
  auto v = random_vec(static_cast<size_t>(c.batch) * c.skv * c.hkv * c.dv, -1.f, 1.f);
  if (c.nanTail)
    for (int b = 0; b < c.batch; ++b)
      for (size_t e = (static_cast<size_t>(b) * c.skv + c.kvLength) * c.hkv * c.d;
           e < static_cast<size_t>(b + 1) * c.skv * c.hkv * c.d; ++e)
        k[e] = v[e] = NAN;
  std::vector<float> mask;
  if (c.maskBatch) {
    mask = random_vec(static_cast<size_t>(c.maskBatch) * c.sq * c.kvLength, -2.f, 2.f);
    for (size_t j = 0; j < mask.size(); j += 5) mask[j] = -INFINITY;
    if (c.fullyMaskedRow)
      for (int j = 0; j < c.kvLength; ++j) mask[j] = -INFINITY;  // batch 0 (or shared), query 0
  }
  Dev dq(q, c.dt), dk(k, c.dt), dv(v, c.dt), dmask(mask, DT::F32);
  Dev dout(static_cast<size_t>(c.batch) * c.sq * c.hq * c.dv * dt_bytes(c.dt));
  const size_t nw = c.weights ? static_cast<size_t>(c.batch) * c.hq * c.sq * c.kvLength : 0;
  Dev dw(nw * 4);
  AttentionDims a{c.batch, c.sq, c.skv, c.kvLength, c.hq, c.hkv, c.d, c.dv,
                  static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.d))), c.causal, c.queryOffset,
                  c.segments.empty() ? 0 : static_cast<int>(c.segments.size()) - 1, c.maskBatch, c.weights};
  const size_t wsb = attention_workspace_bytes(a, c.dt);
  Dev ws(wsb);
  attention(dout.ptr, dq.ptr, dk.ptr, dv.ptr, c.maskBatch ? dmask.as<float>() : nullptr,
            c.weights ? dw.as<float>() : nullptr, c.segments.empty() ? nullptr : c.segments.data(), a, c.dt, ws.ptr,
            wsb, nullptr);
  LS_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> ro, rw;
  attn_reference(c, q, k, v, mask, ro, rw);
  report("attention " + c.name, c.dt, rel_err(dout.read(c.dt, ro.size()), ro));
  if (c.weights) report("attention " + c.name + " weights", c.dt, rel_err(dw.read(DT::F32, nw), rw));
}

// ---- attention mass (the relevance probe) --------------------------------------------------------------

/** attention_mass against float64: Σ_h softmax_j(scale · q_h · k_j) over the first kvLength keys, j in [from, to). */
void run_mass_case(const std::string &name, DT dt, int skv, int kvLength, int hq, int hkv, int d, int from, int to) {
  auto q = random_vec(static_cast<size_t>(hq) * d, -1.5f, 1.5f);
  auto k = random_vec(static_cast<size_t>(skv) * hkv * d, -1.5f, 1.5f);
  Dev dq(q, dt), dk(k, dt);
  Dev dout(static_cast<size_t>(to - from) * 4), dscores(static_cast<size_t>(hq) * kvLength * 4),
      dstats(static_cast<size_t>(hq) * 8);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const AttentionMassDims a{skv, kvLength, hq, hkv, d, from, to, static_cast<float>(scale)};
  attention_mass(dout.as<float>(), dscores.as<float>(), dstats.as<float>(), dq.ptr, dk.ptr, a, dt, nullptr);
  LS_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> ref(to - from, 0.0), s(kvLength);
  for (int h = 0; h < hq; ++h) {
    const int hk = h / (hq / hkv);
    double m = -INFINITY, l = 0;
    for (int j = 0; j < kvLength; ++j) {
      double dot = 0;
      for (int e = 0; e < d; ++e) dot += static_cast<double>(q[h * d + e]) * k[(static_cast<size_t>(j) * hkv + hk) * d + e];
      s[j] = dot * scale;
      m = std::max(m, s[j]);
    }
    for (int j = 0; j < kvLength; ++j) l += std::exp(s[j] - m);
    for (int j = from; j < to; ++j) ref[j - from] += std::exp(s[j] - m) / l;
  }
  report("attention mass " + name, dt, rel_err(dout.read(DT::F32, ref.size()), ref));
}

void test_mass() {
  for (DT dt : {DT::F32, DT::BF16}) {
    run_mass_case("GQA 28/4 d128, 300 keys", dt, 300, 300, 28, 4, 128, 0, 300);
    run_mass_case("cache 517 of 640 keys, span 37..480, 12/2 d64", dt, 640, 517, 12, 2, 64, 37, 480);
    run_mass_case("MHA 6/6 d80, 301 keys, span 5..299", dt, 301, 301, 6, 6, 80, 5, 299);
  }
}

/** Whether the bf16 prefill cases run the wgmma kernel here (sm_90 device, sm_90a image, enabled). */
void print_attention_path() {
  const AttentionDims prefill{1, 256, 256, 256, 1, 1, 128, 128, 0.1f, false, 0, 0, 0, false};
  std::printf("attention: bf16 prefill runs %s\n",
              attention_sm90_supported(prefill, DT::BF16) ? "attention_sm90 (wgmma)" : "flash_fwd (mma.sync)");
}

void test_attention() {
  print_attention_path();
  const std::vector<AttnCase> cases = {
      {"vision segments d80 (unequal, one empty)", DT::BF16, 1, 301, 301, 301, 3, 3, 80, 80, false, 0,
       {0, 37, 37, 150, 301}, 0, false, false},
      {"causal GQA7 d128 offset, kvLength<skv", DT::BF16, 1, 45, 160, 145, 7, 1, 128, 128, true, 100, {}, 0, false, false},
      {"causal GQA1 d64 batch2 prefill", DT::BF16, 2, 131, 131, 131, 2, 2, 64, 64, true, 0, {}, 0, false, false},
      {"decode GQA4 d128 split-K", DT::BF16, 2, 1, 3100, 3001, 8, 2, 128, 128, true, 3000, {}, 0, false, false},
      {"cross-attn GQA4 d128 split-K", DT::BF16, 1, 37, 5003, 5003, 8, 2, 128, 128, false, 0, {}, 0, false, false},
      {"mask [batch] d64 + fully masked row", DT::BF16, 2, 33, 70, 70, 4, 4, 64, 64, false, 0, {}, 2, false, true},
      {"d96 causal mask [1]", DT::BF16, 1, 50, 50, 50, 4, 2, 96, 96, true, 0, {}, 1, false, false},
      // The tiny needle models' heads: vision frames of 64 tokens at d32, text over video keys at d48 (GQA 2).
      {"frames d32 segments of 64", DT::BF16, 1, 192, 192, 192, 4, 4, 32, 32, false, 0, {0, 64, 128, 192}, 0, false,
       false},
      {"cross-attn GQA2 d48 batch2", DT::BF16, 2, 58, 131, 131, 4, 2, 48, 48, false, 0, {}, 0, false, false},
      {"causal d48 GQA2 offset", DT::BF16, 1, 30, 70, 70, 4, 2, 48, 48, true, 40, {}, 0, false, false},
      // ≥ 128 (query, head) rows, bf16, no mask: the sm_90 wgmma kernel on Hopper, flash_fwd elsewhere.
      {"sm90 causal GQA4 d128 batch2, 7 key tiles", DT::BF16, 2, 777, 777, 777, 8, 2, 128, 128, true, 0, {}, 0, false, false},
      {"sm90 vision d80 segments 1/129/0/570/496/304", DT::BF16, 1, 1500, 1500, 1500, 2, 2, 80, 80, false, 0,
       {0, 1, 130, 130, 700, 1196, 1500}, 0, false, false},
      {"sm90 d96 GQA2 non-causal, kvLength<skv (NaN tail)", DT::BF16, 1, 200, 400, 333, 4, 2, 96, 96, false, 0, {}, 0,
       false, false, true},
      {"sm90 causal d80 GQA7 offset, kvLength<skv (NaN tail)", DT::BF16, 1, 130, 1200, 1100, 14, 2, 80, 80, true, 970,
       {}, 0, false, false, true},
      {"sm90 causal d64 GQA7 batch2 offset", DT::BF16, 2, 150, 300, 300, 7, 1, 64, 64, true, 150, {}, 0, false, false},
      {"weights d96 (generic path)", DT::BF16, 1, 20, 41, 41, 4, 2, 96, 96, true, 21, {}, 0, true, false},
      {"dv != d (generic path)", DT::BF16, 1, 17, 29, 29, 2, 1, 64, 32, false, 0, {}, 0, false, false},
      {"vision segments d80", DT::F32, 1, 301, 301, 301, 3, 3, 80, 80, false, 0, {0, 37, 37, 150, 301}, 0, false, false},
      {"causal GQA4 d128 mask + weights", DT::F32, 1, 23, 60, 57, 8, 2, 128, 128, true, 34, {}, 1, true, false},
      {"decode GQA7 d128 kvLength<skv", DT::F32, 1, 1, 999, 777, 7, 1, 128, 128, true, 776, {}, 0, false, false},
      {"cross-attn GQA7 d64 + fully masked row", DT::F32, 2, 9, 700, 700, 14, 2, 64, 64, false, 0, {}, 1, false, true},
  };
  for (const auto &c : cases) run_attention_case(c);
}

// ---- batched decode attention (decode.cu) -----------------------------------------------------------------

struct RowsCase {
  std::string name;
  DT dt;
  int hq, hkv, d, dv;
  std::vector<int> lengths;  // own keys per row
  std::vector<int> prefix;   // prefix keys per row (0: none); all prefixes are the first rows of one buffer
  bool ownShared = false;    // every row's own keys are row 0's buffer (Vamba's video K/V; lengths all equal)
};

/** attention_rows against float64 loops; buffers hold NaN past each length (never read). */
void run_rows_case(const RowsCase &c) {
  const int rows = static_cast<int>(c.lengths.size()), G = c.hq / c.hkv;
  const size_t kRow = static_cast<size_t>(c.hkv) * c.d, vRow = static_cast<size_t>(c.hkv) * c.dv;
  const int plMax = std::max(1, *std::max_element(c.prefix.begin(), c.prefix.end()));
  auto with_tail = [&](int len, size_t row) {
    std::vector<float> h = random_vec((len + 3) * row, -1.f, 1.f);
    std::fill(h.begin() + len * row, h.end(), NAN);
    return h;
  };
  std::vector<float> q = random_vec(static_cast<size_t>(rows) * c.hq * c.d, -1.f, 1.f);
  std::vector<float> pk = with_tail(plMax, kRow), pv = with_tail(plMax, vRow);
  Dev dq(q, c.dt), dpk(pk, c.dt), dpv(pv, c.dt), dout(static_cast<size_t>(rows) * c.hq * c.dv * dt_bytes(c.dt));
  std::vector<std::vector<float>> k(rows), v(rows);
  std::vector<std::unique_ptr<Dev>> dk, dv;
  std::vector<RowKV> kvs(rows);
  for (int r = 0; r < rows; ++r) {
    const bool own = !c.ownShared || r == 0;
    k[r] = own ? with_tail(c.lengths[r], kRow) : k[0];
    v[r] = own ? with_tail(c.lengths[r], vRow) : v[0];
    if (own) {
      dk.push_back(std::make_unique<Dev>(k[r], c.dt));
      dv.push_back(std::make_unique<Dev>(v[r], c.dt));
    }
    kvs[r] = {dk.back()->ptr, dv.back()->ptr, c.lengths[r], c.prefix[r] ? dpk.ptr : nullptr,
              c.prefix[r] ? dpv.ptr : nullptr, c.prefix[r]};
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  const AttentionRowsDims a{rows, c.hq, c.hkv, c.d, c.dv, static_cast<float>(scale)};
  const size_t wsb = attention_rows_workspace_bytes(a, kvs.data(), dq.ptr, c.dt);
  Dev ws(wsb);
  attention_rows(dout.ptr, dq.ptr, kvs.data(), a, c.dt, ws.ptr, wsb, nullptr);
  LS_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> ref(static_cast<size_t>(rows) * c.hq * c.dv, 0.0);
  for (int r = 0; r < rows; ++r)
    for (int h = 0; h < c.hq; ++h) {
      const int hk = h / G, n = c.prefix[r] + c.lengths[r];
      const float *qh = q.data() + (static_cast<size_t>(r) * c.hq + h) * c.d;
      auto keyRow = [&](int j, bool isV) {
        const size_t row = isV ? vRow : kRow, dim = isV ? c.dv : c.d;
        const std::vector<float> &buf = j < c.prefix[r] ? (isV ? pv : pk) : (isV ? v[r] : k[r]);
        return buf.data() + static_cast<size_t>(j < c.prefix[r] ? j : j - c.prefix[r]) * row + hk * dim;
      };
      std::vector<double> s(n);
      double m = -INFINITY, sum = 0;
      for (int j = 0; j < n; ++j) {
        double dot = 0;
        for (int e = 0; e < c.d; ++e) dot += static_cast<double>(qh[e]) * keyRow(j, false)[e];
        s[j] = dot * scale;
        m = std::max(m, s[j]);
      }
      for (int j = 0; j < n; ++j) sum += s[j] = std::exp(s[j] - m);
      double *o = ref.data() + (static_cast<size_t>(r) * c.hq + h) * c.dv;
      for (int j = 0; j < n; ++j)
        for (int e = 0; e < c.dv; ++e) o[e] += s[j] / sum * keyRow(j, true)[e];
    }
  report("attention_rows " + c.name, c.dt, rel_err(dout.read(c.dt, ref.size()), ref));
}

void test_decode() {
  const std::vector<RowsCase> cases = {
      {"GQA7 d128, lengths 1…700 (splits)", DT::BF16, 7, 1, 128, 128, {1, 700, 65, 300}, {0, 0, 0, 0}},
      {"GQA4 d64, 5 rows on one prefix + one on a shorter", DT::BF16, 8, 2, 64, 64, {3, 0, 70, 1, 129, 2},
       {400, 400, 400, 400, 400, 130}},
      {"GQA20 (two head chunks) d80, prefix", DT::BF16, 20, 1, 80, 80, {5, 90}, {0, 257}},
      {"d36 dv20 (scalar loads), prefix", DT::BF16, 4, 2, 36, 20, {33, 7}, {65, 65}},
      {"GQA7 d128, prefix", DT::F32, 14, 2, 128, 128, {10, 300, 1}, {300, 300, 0}},
      {"d60 dv44 GQA1", DT::F32, 3, 3, 60, 44, {77, 2}, {0, 5}},
      // Keys read by several rows in bf16 at d 64/80/96/128 take flash_fwd's tiles (attention_partials), the
      // rows as its queries: all rows (q as it is), some rows (q gathered), own keys in one buffer.
      {"GQA7 d128, all rows on one prefix (tensor cores, splits)", DT::BF16, 28, 4, 128, 128, {1, 0, 40, 3},
       {1500, 1500, 1500, 1500}},
      {"GQA7 d128, 12 rows on one prefix (two query tiles)", DT::BF16, 14, 2, 128, 128,
       {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, std::vector<int>(12, 200)},
      {"GQA2 d96, two prefixes of two rows, one lone", DT::BF16, 4, 2, 96, 96, {5, 0, 9, 1, 64},
       {130, 130, 77, 77, 130}},
      {"GQA1 d80, own keys shared by three rows", DT::BF16, 2, 2, 80, 80, {333, 333, 333}, {0, 0, 0}, true},
      {"GQA7 d128, own keys shared (Vamba's cross-attention)", DT::BF16, 28, 4, 128, 128, {2000, 2000},
       {0, 0}, true},
      {"f32 d64, own keys shared (scalar tasks)", DT::F32, 4, 1, 64, 64, {150, 150, 150}, {0, 0, 0}, true},
  };
  for (const auto &c : cases) run_rows_case(c);
}

// ---- SSD ------------------------------------------------------------------------------------------------

struct SsdData {
  SsdDims d;
  std::vector<float> x, dt, A, B, C, D, s0;
};

SsdData make_ssd(int batch, int len, int H, int P, int G, int N, int chunk) {
  SsdData s;
  s.d = {batch, len, H, P, G, N, chunk};
  s.x = random_vec(static_cast<size_t>(batch) * len * H * P, -1.f, 1.f);
  s.dt = random_vec(static_cast<size_t>(batch) * len * H, 0.005f, 0.2f);
  s.A = random_vec(H, -8.f, -0.5f);
  s.B = random_vec(static_cast<size_t>(batch) * len * G * N, -1.f, 1.f);
  s.C = random_vec(static_cast<size_t>(batch) * len * G * N, -1.f, 1.f);
  s.D = random_vec(H, 0.5f, 1.5f);
  s.s0 = random_vec(static_cast<size_t>(batch) * H * P * N, -1.f, 1.f);
  return s;
}

/** Sequential recurrence in float64 over tokens [t0, t1); `state` is carried in place. */
void ssd_reference(const SsdData &s, int t0, int t1, std::vector<double> &state, std::vector<double> &y) {
  const auto &d = s.d;
  y.assign(static_cast<size_t>(d.batch) * (t1 - t0) * d.heads * d.headDim, 0.0);
  for (int b = 0; b < d.batch; ++b)
    for (int h = 0; h < d.heads; ++h) {
      const int g = h / (d.heads / d.groups);
      for (int t = t0; t < t1; ++t) {
        const double dtv = s.dt[(static_cast<size_t>(b) * d.len + t) * d.heads + h];
        const double decay = std::exp(dtv * s.A[h]);
        for (int p = 0; p < d.headDim; ++p) {
          const double xv = s.x[((static_cast<size_t>(b) * d.len + t) * d.heads + h) * d.headDim + p];
          double acc = 0;
          for (int n = 0; n < d.dState; ++n) {
            const size_t bc = ((static_cast<size_t>(b) * d.len + t) * d.groups + g) * d.dState + n;
            double &st = state[((static_cast<size_t>(b) * d.heads + h) * d.headDim + p) * d.dState + n];
            st = st * decay + dtv * xv * s.B[bc];
            acc += st * s.C[bc];
          }
          y[((static_cast<size_t>(b) * (t1 - t0) + t - t0) * d.heads + h) * d.headDim + p] = acc + s.D[h] * xv;
        }
      }
    }
}

/** Slices tokens [t0, t1) of a [batch, len, inner] host tensor. */
std::vector<float> slice_tokens(const std::vector<float> &v, int batch, int len, size_t inner, int t0, int t1) {
  std::vector<float> out;
  for (int b = 0; b < batch; ++b)
    out.insert(out.end(), v.begin() + (static_cast<size_t>(b) * len + t0) * inner,
               v.begin() + (static_cast<size_t>(b) * len + t1) * inner);
  return out;
}

/** Runs ssd_scan on tokens [t0, t1) of `s` from device state `st` (in/out); returns y. */
std::vector<float> device_scan(SsdData &s, DT dt, int t0, int t1, Dev &st, bool withInit, bool oneChunkRuns = false) {
  const auto &d = s.d;
  const size_t hp = static_cast<size_t>(d.heads) * d.headDim, gn = static_cast<size_t>(d.groups) * d.dState;
  auto x = slice_tokens(s.x, d.batch, d.len, hp, t0, t1), dts = slice_tokens(s.dt, d.batch, d.len, d.heads, t0, t1);
  auto B = slice_tokens(s.B, d.batch, d.len, gn, t0, t1), C = slice_tokens(s.C, d.batch, d.len, gn, t0, t1);
  Dev dx(x, dt), ddt(dts, DT::F32), dA(s.A, DT::F32), dB(B, dt), dC(C, dt), dD(s.D, DT::F32);
  Dev dy(x.size() * dt_bytes(dt)), out(st.bytes);
  SsdDims sd = d;
  sd.len = t1 - t0;
  size_t wsb = ssd_scan_workspace_bytes(sd, dt);
  if (oneChunkRuns) {  // the workspace of a single chunk forces one chunk per run (multi-run state carry)
    SsdDims one = sd;
    one.len = std::min(sd.len, std::clamp((sd.chunkSize + 32) / 64 * 64, 64, 256));
    wsb = ssd_scan_workspace_bytes(one, dt);
  }
  Dev ws(wsb);
  ssd_scan(dy.ptr, out.as<float>(), dx.ptr, ddt.as<float>(), dA.as<float>(), dB.ptr, dC.ptr, dD.ptr, DT::F32,
           withInit ? st.as<float>() : nullptr, sd, dt, ws.ptr, wsb, nullptr);
  LS_CUDA_CHECK(cudaMemcpy(st.ptr, out.ptr, st.bytes, cudaMemcpyDeviceToDevice));
  // Write back the rounded operands so the float64 reference sees what the device saw.
  for (int b = 0; b < d.batch; ++b) {
    std::copy(x.begin() + b * (t1 - t0) * hp, x.begin() + (b + 1) * (t1 - t0) * hp,
              s.x.begin() + (static_cast<size_t>(b) * d.len + t0) * hp);
    std::copy(B.begin() + b * (t1 - t0) * gn, B.begin() + (b + 1) * (t1 - t0) * gn,
              s.B.begin() + (static_cast<size_t>(b) * d.len + t0) * gn);
    std::copy(C.begin() + b * (t1 - t0) * gn, C.begin() + (b + 1) * (t1 - t0) * gn,
              s.C.begin() + (static_cast<size_t>(b) * d.len + t0) * gn);
  }
  return dy.read(dt, x.size());
}

void test_ssd_case(const std::string &name, DT dt, int batch, int len, int H, int P, int G, int N, int chunk,
                   int split, bool oneChunkRuns = false) {
  SsdData s = make_ssd(batch, len, H, P, G, N, chunk);
  Dev st(s.s0, DT::F32);
  std::vector<float> y;
  std::vector<int> cuts = {0};
  if (split > 0) cuts.push_back(split);
  cuts.push_back(len);
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    auto part = device_scan(s, dt, cuts[i], cuts[i + 1], st, true, oneChunkRuns);
    // Interleave per batch: parts are [batch, partLen, ...]; rebuild [batch, len, ...] below.
    if (i == 0) y.assign(static_cast<size_t>(batch) * len * H * P, 0.f);
    const size_t hp = static_cast<size_t>(H) * P, pl = cuts[i + 1] - cuts[i];
    for (int b = 0; b < batch; ++b)
      std::copy(part.begin() + b * pl * hp, part.begin() + (b + 1) * pl * hp,
                y.begin() + (static_cast<size_t>(b) * len + cuts[i]) * hp);
  }
  std::vector<double> state(s.s0.begin(), s.s0.end()), ry;
  ssd_reference(s, 0, len, state, ry);
  report("ssd_scan " + name, dt, rel_err(y, ry));
  report("ssd_scan " + name + " final state", dt, rel_err(st.read(DT::F32, state.size()), state));
}

void test_ssm_step(DT dt) {
  // Step token by token from a random state and compare with the recurrence and with one ssd_scan.
  const int batch = 2, len = 12, H = 6, P = 40, G = 2, N = 72;
  SsdData s = make_ssd(batch, len, H, P, G, N, 256);
  Dev st(s.s0, DT::F32);
  Dev stScan(s.s0, DT::F32);
  auto yScan = device_scan(s, dt, 0, len, stScan, true);  // also rounds s.x/B/C for bf16
  std::vector<float> yStep(yScan.size());
  for (int t = 0; t < len; ++t) {
    auto x = slice_tokens(s.x, batch, len, static_cast<size_t>(H) * P, t, t + 1);
    auto dts = slice_tokens(s.dt, batch, len, H, t, t + 1);
    auto B = slice_tokens(s.B, batch, len, static_cast<size_t>(G) * N, t, t + 1);
    auto C = slice_tokens(s.C, batch, len, static_cast<size_t>(G) * N, t, t + 1);
    Dev dx(x, dt), ddt(dts, DT::F32), dA(s.A, DT::F32), dB(B, dt), dC(C, dt), dD(s.D, DT::F32);
    Dev dy(x.size() * dt_bytes(dt));
    SsdDims sd{batch, 1, H, P, G, N, 1};
    ssm_step(dy.ptr, st.as<float>(), dx.ptr, ddt.as<float>(), dA.as<float>(), dB.ptr, dC.ptr, dD.ptr, DT::F32, sd, dt,
             nullptr);
    auto yt = dy.read(dt, x.size());
    for (int b = 0; b < batch; ++b)
      std::copy(yt.begin() + b * H * P, yt.begin() + (b + 1) * H * P, yStep.begin() + (static_cast<size_t>(b) * len + t) * H * P);
  }
  std::vector<double> state(s.s0.begin(), s.s0.end()), ry;
  ssd_reference(s, 0, len, state, ry);
  report("ssm_step 12 tokens vs recurrence", dt, rel_err(yStep, ry));
  report("ssm_step final state", dt, rel_err(st.read(DT::F32, state.size()), state));
  std::vector<double> yScanD(yScan.begin(), yScan.end());
  report("ssm_step equals ssd_scan", dt, rel_err(yStep, yScanD));
}

void test_ssd() {
  test_ssd_case("b2 L300 H4 P40 G2 N72 chunk64 + init", DT::F32, 2, 300, 4, 40, 2, 72, 64, 0);
  test_ssd_case("b1 L700 H4 P64 G1 N128 chunk256 split@333", DT::F32, 1, 700, 4, 64, 1, 128, 256, 333);
  test_ssd_case("b1 L1000 H8 P64 G1 N128 chunk256 + init", DT::BF16, 1, 1000, 8, 64, 1, 128, 256, 0);
  test_ssd_case("b2 L777 H4 P64 G2 N64 split@200, 1-chunk runs", DT::BF16, 2, 777, 4, 64, 2, 64, 128, 200, true);
  test_ssd_case("b1 L520 H2 P32 G1 N16 chunk256, 1-chunk runs", DT::F32, 1, 520, 2, 32, 1, 16, 256, 0, true);
  // Rows that cannot move in 16-byte pieces (P, N not multiples of 8), the 128×256 tiles, 3 blocks per chunk.
  test_ssd_case("b1 L333 H4 P20 G2 N50 chunk128 + init, unpacked rows", DT::BF16, 1, 333, 4, 20, 2, 50, 128, 0);
  test_ssd_case("b1 L300 H2 P128 G1 N256 chunk64 split@130", DT::BF16, 1, 300, 2, 128, 1, 256, 64, 130);
  test_ssd_case("b2 L200 H2 P96 G1 N96 chunk192 split@77", DT::F32, 2, 200, 2, 96, 1, 96, 192, 77);
  test_ssm_step(DT::F32);
  test_ssm_step(DT::BF16);
}

// ---- conv1d ---------------------------------------------------------------------------------------------

void test_conv1d_case(const std::string &name, DT dt, DT wdt, int batch, int len, int ch, int width, bool silu,
                      bool bias, int split) {
  auto x = random_vec(static_cast<size_t>(batch) * len * ch, -2.f, 2.f);
  auto w = random_vec(static_cast<size_t>(ch) * width, -1.f, 1.f);
  auto bv = random_vec(ch, -0.5f, 0.5f);
  auto s0 = random_vec(static_cast<size_t>(batch) * (width - 1) * ch, -2.f, 2.f);
  Dev dw(w, wdt), db(bv, wdt), st(s0, dt);
  std::vector<float> y(x.size());
  std::vector<int> cuts = {0};
  if (split > 0) cuts.push_back(split);
  cuts.push_back(len);
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const int t0 = cuts[i], t1 = cuts[i + 1];
    auto xs = slice_tokens(x, batch, len, ch, t0, t1);
    Dev dx(xs, dt), dy(xs.size() * dt_bytes(dt)), so(st.bytes);
    conv1d(dy.ptr, so.ptr, dx.ptr, dw.ptr, bias ? db.ptr : nullptr, st.ptr, Conv1dDims{batch, t1 - t0, ch, width, silu},
           dt, wdt, nullptr);
    LS_CUDA_CHECK(cudaMemcpy(st.ptr, so.ptr, st.bytes, cudaMemcpyDeviceToDevice));
    auto ys = dy.read(dt, xs.size());
    for (int b = 0; b < batch; ++b) {
      std::copy(ys.begin() + b * (t1 - t0) * ch, ys.begin() + (b + 1) * (t1 - t0) * ch,
                y.begin() + (static_cast<size_t>(b) * len + t0) * ch);
      std::copy(xs.begin() + b * (t1 - t0) * ch, xs.begin() + (b + 1) * (t1 - t0) * ch,
                x.begin() + (static_cast<size_t>(b) * len + t0) * ch);
    }
  }
  std::vector<double> ry(x.size()), rs(s0.size());
  auto in = [&](int b, int idx, int c) -> double {
    return idx >= 0 ? x[(static_cast<size_t>(b) * len + idx) * ch + c]
                    : s0[(static_cast<size_t>(b) * (width - 1) + width - 1 + idx) * ch + c];
  };
  for (int b = 0; b < batch; ++b)
    for (int t = 0; t < len; ++t)
      for (int c = 0; c < ch; ++c) {
        double acc = bias ? bv[c] : 0.0;
        for (int k = 0; k < width; ++k) acc += static_cast<double>(w[static_cast<size_t>(c) * width + k]) * in(b, t - (width - 1) + k, c);
        if (silu) acc = acc / (1 + std::exp(-acc));
        ry[(static_cast<size_t>(b) * len + t) * ch + c] = acc;
      }
  for (int b = 0; b < batch; ++b)
    for (int j = 0; j < width - 1; ++j)
      for (int c = 0; c < ch; ++c)
        rs[(static_cast<size_t>(b) * (width - 1) + j) * ch + c] = in(b, len - (width - 1) + j, c);
  report("conv1d " + name, dt, rel_err(y, ry));
  report("conv1d " + name + " state", dt, rel_err(st.read(dt, rs.size()), rs));
}

void test_conv1d() {
  test_conv1d_case("b2 L50 C37 W4 silu bias split@17", DT::F32, DT::F32, 2, 50, 37, 4, true, true, 17);
  test_conv1d_case("b1 L2 C300 W4 no-bias (len < width-1 carry)", DT::F32, DT::F32, 1, 2, 300, 4, false, false, 1);
  test_conv1d_case("b3 L129 C517 W4 silu bias, f32 weights", DT::BF16, DT::F32, 3, 129, 517, 4, true, true, 64);
  test_conv1d_case("b1 L1 C64 W3 decode, bf16 weights", DT::BF16, DT::BF16, 1, 1, 64, 3, true, true, 0);
  // Packed path (channels a multiple of 8): token tiles cut by the split and the end, widths 4 and 2.
  test_conv1d_case("b2 L70 C520 W4 silu bias split@33, f32 weights", DT::BF16, DT::F32, 2, 70, 520, 4, true, true, 33);
  test_conv1d_case("b1 L37 C136 W2 no-bias split@5", DT::BF16, DT::BF16, 1, 37, 136, 2, false, false, 5);
}

// ---- RMSNorm / LayerNorm -------------------------------------------------------------------------------

double silu_d(double v) { return v / (1 + std::exp(-v)); }
ET et_of(DT dt) { return dt == DT::F32 ? ET::F32 : ET::BF16; }

/** rmsNorm over `rows` rows of `dim` in groups of `group`: plain, f32 weight, gated before / after the norm. */
void test_rms_norm_case(DT dt, int rows, int dim, int group) {
  for (int mode = 0; mode < 4; ++mode) {
    const DT wdt = mode == 1 ? DT::F32 : dt;
    auto x = random_vec(static_cast<size_t>(rows) * dim, -2.f, 2.f), g = random_vec(x.size(), -2.f, 2.f);
    auto w = random_vec(dim, 0.5f, 1.5f);
    Dev dx(x, dt), dg(g, dt), dw(w, wdt), dy(x.size() * dt_bytes(dt));
    const bool gated = mode >= 2;
    launch_rms_norm(dy.ptr, dx.ptr, et_of(dt), dw.ptr, et_of(wdt), gated ? dg.ptr : nullptr, rows, dim, group, 1e-5f,
                    mode == 3, nullptr, nullptr, nullptr);
    std::vector<double> ref(x.size());
    for (size_t g0 = 0; g0 < x.size(); g0 += group) {
      double ss = 0;
      for (int i = 0; i < group; ++i) {
        const double z = x[g0 + i] * (mode == 2 ? silu_d(g[g0 + i]) : 1.0);
        ss += z * z;
      }
      const double inv = 1 / std::sqrt(ss / group + 1e-5);
      for (int i = 0; i < group; ++i) {
        const size_t e = g0 + i;
        ref[e] = x[e] * (mode == 2 ? silu_d(g[e]) : 1.0) * inv * w[e % dim] * (mode == 3 ? silu_d(g[e]) : 1.0);
      }
    }
    static const char *kind[] = {"", ", f32 weight", ", gate first", ", gate after the norm"};
    report("rmsNorm " + std::to_string(rows) + "x" + std::to_string(dim) + " group " + std::to_string(group) + kind[mode],
           dt, rel_err(dy.read(dt, x.size()), ref));
  }
}

void test_layer_norm_case(DT dt, int rows, int dim) {
  auto x = random_vec(static_cast<size_t>(rows) * dim, 3.f, 7.f);  // a large mean: the variance must not cancel
  auto w = random_vec(dim, -1.f, 1.f), bias = random_vec(dim, -1.f, 1.f);
  Dev dx(x, dt), dw(w, dt), db(bias, dt), dy(x.size() * dt_bytes(dt));
  launch_layer_norm(dy.ptr, dx.ptr, et_of(dt), dw.ptr, db.ptr, et_of(dt), rows, dim, 1e-6f, nullptr, nullptr, nullptr);
  std::vector<double> ref(x.size());
  for (int r = 0; r < rows; ++r) {
    const float *xr = x.data() + static_cast<size_t>(r) * dim;
    double m = 0, q = 0;
    for (int i = 0; i < dim; ++i) m += xr[i];
    m /= dim;
    for (int i = 0; i < dim; ++i) q += (xr[i] - m) * (xr[i] - m);
    const double inv = 1 / std::sqrt(q / dim + 1e-6);
    for (int i = 0; i < dim; ++i) ref[static_cast<size_t>(r) * dim + i] = (xr[i] - m) * inv * w[i] + bias[i];
  }
  report("layerNorm " + std::to_string(rows) + "x" + std::to_string(dim), dt, rel_err(dy.read(dt, x.size()), ref));
}

/**
 * The fused residual add of both norms: `sum` must be x + residual rounded to the dtype (exactly what an
 * unfused add stores) and the norm must be that of the rounded sum.
 */
void test_residual_norm_case(DT dt, int rows, int dim) {
  const size_t n = static_cast<size_t>(rows) * dim;
  auto x = random_vec(n, -2.f, 2.f), res = random_vec(n, -2.f, 2.f);
  auto w = random_vec(dim, 0.5f, 1.5f), bias = random_vec(dim, -1.f, 1.f);
  Dev dx(x, dt), dr(res, dt), dw(w, dt), db(bias, dt), dy(n * dt_bytes(dt)), ds(n * dt_bytes(dt));
  std::vector<float> sum(n);
  for (size_t i = 0; i < n; ++i) sum[i] = x[i] + res[i];
  Dev rounded(sum, dt);  // rounds `sum` in place to what the device stores
  const std::vector<double> sumRef(sum.begin(), sum.end());
  for (int kind = 0; kind < 2; ++kind) {
    if (kind == 0)
      launch_rms_norm(dy.ptr, dx.ptr, et_of(dt), dw.ptr, et_of(dt), nullptr, rows, dim, dim, 1e-5f, false, dr.ptr,
                      ds.ptr, nullptr);
    else
      launch_layer_norm(dy.ptr, dx.ptr, et_of(dt), dw.ptr, db.ptr, et_of(dt), rows, dim, 1e-6f, dr.ptr, ds.ptr,
                        nullptr);
    std::vector<double> ref(n);
    for (int r = 0; r < rows; ++r) {
      const double *sr = sumRef.data() + static_cast<size_t>(r) * dim;
      double m = 0, q = 0;
      if (kind == 1) {
        for (int i = 0; i < dim; ++i) m += sr[i];
        m /= dim;
      }
      for (int i = 0; i < dim; ++i) q += (sr[i] - m) * (sr[i] - m);
      const double inv = 1 / std::sqrt(q / dim + (kind == 0 ? 1e-5 : 1e-6));
      for (int i = 0; i < dim; ++i)
        ref[static_cast<size_t>(r) * dim + i] = (sr[i] - m) * inv * w[i] + (kind == 1 ? bias[i] : 0.0);
    }
    const std::string name = std::string(kind == 0 ? "rmsNorm" : "layerNorm") + " + residual " +
                             std::to_string(rows) + "x" + std::to_string(dim);
    report(name + " sum (exact)", dt, rel_err(ds.read(dt, n), sumRef) == 0 ? 0.0 : 1.0);
    report(name, dt, rel_err(dy.read(dt, n), ref));
    LS_CUDA_CHECK(cudaMemset(ds.ptr, 0, n * dt_bytes(dt)));
  }
}

void test_norms() {
  // Row kernels with 8 to 256 lanes per row (16-byte packs and single elements, partly filled lanes, rows past
  // the last in a block) and the block-per-row kernel beyond 1024 packs.
  for (DT dt : {DT::BF16, DT::F32}) {
    for (int dim : {37, 320, 1280, 3584, 7168, 9000}) {
      test_rms_norm_case(dt, 5, dim, dim);
      test_layer_norm_case(dt, 7, dim);
    }
    test_rms_norm_case(dt, 3, 3584, 448);
    test_rms_norm_case(dt, 3, 320, 40);
    // Fused residual add: single elements, 16-byte packs in the row kernels, and the block-per-row fallback.
    for (int dim : {37, 3584, 9000}) test_residual_norm_case(dt, 5, dim);
  }
}

// ---- bench ----------------------------------------------------------------------------------------------

double time_ms(const std::function<void()> &fn) {
  fn();  // warm-up (also sets function attributes)
  LS_CUDA_CHECK(cudaDeviceSynchronize());
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaEventRecord(e0);
  fn();
  cudaEventRecord(e1);
  LS_CUDA_CHECK(cudaEventSynchronize(e1));
  float once = 0;
  cudaEventElapsedTime(&once, e0, e1);
  const int reps = std::clamp(static_cast<int>(200.0 / std::max(once, 0.01f)), 1, 20);
  cudaEventRecord(e0);
  for (int r = 0; r < reps; ++r) fn();
  cudaEventRecord(e1);
  LS_CUDA_CHECK(cudaEventSynchronize(e1));
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return ms / reps;
}

FILE *jsonOut = nullptr;
bool firstRecord = true;
std::string benchFilter;  // run only the cases whose name contains it
void record(const std::string &kind, const std::string &name, double ms, double flops, double bytes) {
  std::printf("%-10s %-48s %10.3f ms %8.1f TFLOP/s %8.1f GB/s\n", kind.c_str(), name.c_str(), ms,
              flops / ms / 1e9, bytes / ms / 1e6);
  std::fflush(stdout);
  if (jsonOut) {
    std::fprintf(jsonOut, "%s{\"kind\":\"%s\",\"name\":\"%s\",\"ms\":%.6f,\"flops\":%.6e,\"bytes\":%.6e}",
                 firstRecord ? "" : ",\n", kind.c_str(), name.c_str(), ms, flops, bytes);
    firstRecord = false;
  }
}

void bench_attention(const std::string &name, int batch, int sq, int skv, int hq, int hkv, int d, bool causal,
                     int queryOffset, int nseg, int segLen) {
  if (name.find(benchFilter) == std::string::npos) return;
  const size_t nq = static_cast<size_t>(batch) * sq * hq * d, nk = static_cast<size_t>(batch) * skv * hkv * d;
  Dev q(nq * 2), k(nk * 2), v(nk * 2), out(nq * 2);
  std::vector<int> seg;
  for (int s = 0; s <= nseg; ++s) seg.push_back(s * segLen);
  AttentionDims a{batch, sq, skv, skv, hq, hkv, d, d, static_cast<float>(1.0 / std::sqrt(d)), causal, queryOffset,
                  nseg, 0, false};
  const size_t wsb = attention_workspace_bytes(a, DT::BF16);
  Dev ws(wsb);
  // Inputs: small values so the timing sees no NaN/Inf paths (contents do not change the work).
  std::vector<__nv_bfloat16> h(std::max(nq, nk));
  for (size_t i = 0; i < h.size(); ++i) h[i] = __float2bfloat16_rn(static_cast<float>((i * 2654435761u) % 1000) / 1000.f - 0.5f);
  cudaMemcpy(q.ptr, h.data(), nq * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(k.ptr, h.data(), nk * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(v.ptr, h.data(), nk * 2, cudaMemcpyHostToDevice);
  const double ms = time_ms([&] {
    attention(out.ptr, q.ptr, k.ptr, v.ptr, nullptr, nullptr, nseg ? seg.data() : nullptr, a, DT::BF16, ws.ptr, wsb,
              nullptr);
  });
  double pairs;
  if (nseg) pairs = static_cast<double>(nseg) * segLen * segLen;
  else if (causal) pairs = static_cast<double>(sq) * queryOffset + static_cast<double>(sq) * (sq + 1) / 2;
  else pairs = static_cast<double>(sq) * skv;
  const double flops = 4.0 * pairs * d * hq * batch;
  record("attention", name, ms, flops, 2.0 * (2 * nq + 2 * nk));
}

void bench_ssd(const std::string &name, int len) {
  if (name.find(benchFilter) == std::string::npos) return;
  const int H = 112, P = 64, N = 128, G = 1;
  const size_t nx = static_cast<size_t>(len) * H * P, nb = static_cast<size_t>(len) * G * N;
  Dev x(nx * 2), y(nx * 2), B(nb * 2), C(nb * 2), dt(static_cast<size_t>(len) * H * 4), A(H * 4), D(H * 4),
      st(static_cast<size_t>(H) * P * N * 4);
  std::vector<float> dth(static_cast<size_t>(len) * H, 0.05f), Ah(H, -1.f);
  cudaMemcpy(dt.ptr, dth.data(), dth.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(A.ptr, Ah.data(), H * 4, cudaMemcpyHostToDevice);
  SsdDims d{1, len, H, P, G, N, 256};
  const size_t wsb = ssd_scan_workspace_bytes(d, DT::BF16);
  Dev ws(wsb);
  const double ms = time_ms([&] {
    ssd_scan(y.ptr, st.as<float>(), x.ptr, dt.as<float>(), A.as<float>(), B.ptr, C.ptr, D.ptr, DT::F32, nullptr, d,
             DT::BF16, ws.ptr, wsb, nullptr);
  });
  // Useful work of the chunked algorithm (chunk states, C·Bᵀ, intra-chunk and state outputs).
  const double Q = 256, chunks = std::ceil(len / Q);
  const double flops = chunks * (H * (2.0 * P * N * Q * 2 + Q * Q * P) + G * Q * Q * N);
  record("ssd", name, ms, flops, 2.0 * (2 * nx + 2 * nb) + 4.0 * len * H);
}

void bench_conv1d(const std::string &name, int len, int ch) {
  if (name.find(benchFilter) == std::string::npos) return;
  const size_t n = static_cast<size_t>(len) * ch;
  Dev x(n * 2), y(n * 2), w(static_cast<size_t>(ch) * 4 * 2), b(ch * 2), so(3 * ch * 2);
  const double ms = time_ms([&] {
    conv1d(y.ptr, so.ptr, x.ptr, w.ptr, b.ptr, nullptr, Conv1dDims{1, len, ch, 4, true}, DT::BF16, DT::BF16, nullptr);
  });
  record("conv1d", name, ms, 8.0 * n, 4.0 * n);
}

void bench(const char *path) {
  print_attention_path();
  if (path) {
    jsonOut = std::fopen(path, "w");
    std::fprintf(jsonOut, "[\n");
  }
  for (int nseg : {256, 1024, 2048})
    bench_attention("vision d80 16h 1196x" + std::to_string(nseg), 1, nseg * 1196, nseg * 1196, 16, 16, 80, false, 0,
                    nseg, 1196);
  for (int n : {8192, 32768, 131072})
    bench_attention("causal 28/4h d128 " + std::to_string(n), 1, n, n, 28, 4, 128, true, 0, 0, 0);
  bench_attention("decode 28/4h d128 kv131072", 1, 1, 131072, 28, 4, 128, true, 131071, 0, 0);
  for (int n : {150000, 540000})
    bench_attention("cross 256q 28/4h d128 kv" + std::to_string(n), 1, 256, n, 28, 4, 128, false, 0, 0, 0);
  for (int n : {16384, 65536, 153600, 262144, 540672}) bench_ssd("ssd 112h P64 N128 L" + std::to_string(n), n);
  bench_conv1d("conv1d 7168+256 ch W4 L65536", 65536, 7168 + 256);
  if (jsonOut) {
    std::fprintf(jsonOut, "\n]\n");
    std::fclose(jsonOut);
  }
}

}  // namespace

int main(int argc, char **argv) {
  const std::string mode = argc > 1 ? argv[1] : "test";
  try {
    if (mode == "bench") {
      if (argc > 3) benchFilter = argv[3];
      bench(argc > 2 && std::strcmp(argv[2], "-") != 0 ? argv[2] : nullptr);
      return 0;
    }
    // `test [family]` runs one family (attention, mass, ssd, conv1d, norm, decode) or all of them.
    const std::string only = argc > 2 ? argv[2] : "";
    if (only.empty() || only == "attention") test_attention();
    if (only.empty() || only == "mass") test_mass();
    if (only.empty() || only == "ssd") test_ssd();
    if (only.empty() || only == "conv1d") test_conv1d();
    if (only.empty() || only == "norm") test_norms();
    if (only.empty() || only == "decode") test_decode();
  } catch (const std::exception &e) {
    std::printf("FAIL exception: %s\n", e.what());
    return 1;
  }
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
