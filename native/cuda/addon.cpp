// Node-API binding of the CUDA backend. Device pointers travel to JS as numbers (GPU virtual addresses are
// below 2^53); each exported function takes the pointers and dims that src/backends/cuda/backend.ts passes,
// enqueues work on the one stream and returns. Errors become JS exceptions: `code` is ERR_LONGSHOT_OOM for
// exhausted memory (with requested/free/held byte counts), ERR_LONGSHOT_ARGUMENT for bad arguments (e.g. an
// embedding id outside the vocabulary), ERR_LONGSHOT_CUDA otherwise.
#include <node_api.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "allocator.h"
#include "attention_mass.h"
#include "blas.h"
#include "copy_pool.h"
#include "kernels.h"

#if __has_include("attention.h")
#include "attention.h"
#define LS_HAVE_ATTENTION 1
#endif
#if __has_include("ssd.h")
#include "ssd.h"
#define LS_HAVE_SSD 1
#endif
#if __has_include("conv1d.h")
#include "conv1d.h"
#define LS_HAVE_CONV1D 1
#endif
#if __has_include("grad.h")
#include "grad.h"
#define LS_HAVE_GRAD 1
#endif
#if __has_include("decode.h")
#include "decode.h"
#define LS_HAVE_DECODE 1
#endif

namespace {

/**
 * Host↔device copies go through a ring of pinned buffers so that pageable JS memory never blocks a DMA. An
 * upload's DMA is queued on the compute stream behind the work already there; with a ring larger than what the
 * host uploads while that work runs (a 16-frame batch of 644×364 patches is 45 MB, a 128-video training batch of
 * needle frames 230 MB), the host copies the next batch in without waiting for that work to finish, so the GPU
 * does not idle while the host fills buffers. The ring starts at 128 MiB and grows, up to 1 GiB, whenever the
 * buffer due next still has its DMA queued.
 */
class Staging {
 public:
  static constexpr size_t kBytes = size_t(8) << 20;
  static constexpr size_t kStart = 16, kMax = 128;
  Staging() {
    for (size_t i = 0; i < kStart; i++)
      if (!grow(ring_.size())) LS_CUDA_CHECK(cudaErrorMemoryAllocation);
  }
  ~Staging() {
    for (Slot &b : ring_) {
      cudaEventDestroy(b.done);
      cudaFreeHost(b.buf);
    }
  }
  /** Copies host bytes into pinned memory and enqueues the DMA; returns before the DMA finishes. */
  void upload(char *dst, const char *src, size_t bytes, cudaStream_t s) {
    for (size_t off = 0; off < bytes; off += kBytes) {
      const size_t n = bytes - off < kBytes ? bytes - off : kBytes;
      if (ring_.size() < kMax && busy(ring_[next_].done)) grow(next_);  // a fresh buffer instead of a wait, if any
      Slot &b = ring_[next_];
      next_ = (next_ + 1) % ring_.size();
      LS_CUDA_CHECK(cudaEventSynchronize(b.done));  // the previous DMA out of this buffer has finished
      pool_.copy(static_cast<char *>(b.buf), src + off, n);
      LS_CUDA_CHECK(cudaMemcpyAsync(dst + off, b.buf, n, cudaMemcpyHostToDevice, s));
      LS_CUDA_CHECK(cudaEventRecord(b.done, s));
    }
  }
  /** Waits for queued work, then copies device bytes to the host, overlapping DMA and memcpy (two buffers). */
  void download(char *dst, const char *src, size_t bytes, cudaStream_t s) {
    const size_t chunks = ceil_div(bytes, kBytes);
    auto enqueue = [&](size_t c) {
      const size_t off = c * kBytes, n = bytes - off < kBytes ? bytes - off : kBytes;
      Slot &b = ring_[c & 1];
      LS_CUDA_CHECK(cudaEventSynchronize(b.done));
      LS_CUDA_CHECK(cudaMemcpyAsync(b.buf, src + off, n, cudaMemcpyDeviceToHost, s));
      LS_CUDA_CHECK(cudaEventRecord(b.done, s));
    };
    if (chunks) enqueue(0);
    for (size_t c = 0; c < chunks; c++) {
      if (c + 1 < chunks) enqueue(c + 1);
      LS_CUDA_CHECK(cudaEventSynchronize(ring_[c & 1].done));
      const size_t off = c * kBytes, n = bytes - off < kBytes ? bytes - off : kBytes;
      std::memcpy(dst + off, ring_[c & 1].buf, n);
    }
  }

 private:
  struct Slot {
    void *buf;
    cudaEvent_t done;
  };
  /**
   * A new buffer at position i of the ring: the oldest stays next (the new one is used first, as unused). False
   * when no pinned memory is left: the upload then waits for the buffer due next, as a full ring does.
   */
  bool grow(size_t i) {
    Slot b{};
    if (cudaHostAlloc(&b.buf, kBytes, cudaHostAllocDefault) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    LS_CUDA_CHECK(cudaEventCreateWithFlags(&b.done, cudaEventDisableTiming));
    ring_.insert(ring_.begin() + static_cast<std::ptrdiff_t>(i), b);
    return true;
  }
  /** Whether a DMA recorded on `e` is still queued (clears the not-ready status so no later check sees it). */
  static bool busy(cudaEvent_t e) {
    const cudaError_t r = cudaEventQuery(e);
    if (r == cudaErrorNotReady) {
      if (cudaPeekAtLastError() == cudaErrorNotReady) (void)cudaGetLastError();
      return true;
    }
    LS_CUDA_CHECK(r);
    return false;
  }
  std::vector<Slot> ring_;
  size_t next_ = 0;
  CopyPool pool_;
};

struct Device {
  cudaDeviceProp prop;
  cudaStream_t stream;
  CachingAllocator alloc;
  std::unique_ptr<Staging> staging;
  std::unique_ptr<Blas> blas;
};
Device *g_dev = nullptr;

Device &dev() {
  if (!g_dev) throw std::runtime_error("the CUDA backend is not initialised (call init first)");
  return *g_dev;
}

/** Scratch device memory for one call, returned to the cache when the call has enqueued its work. */
struct Scratch {
  void *p;
  explicit Scratch(size_t bytes) : p(dev().alloc.allocate(bytes)) {}
  ~Scratch() { dev().alloc.release(p); }
};

// ---- argument access ------------------------------------------------------------------------------

struct Args {
  napi_env env;
  size_t argc = 24;
  napi_value argv[24];
  Args(napi_env e, napi_callback_info info) : env(e) { napi_get_cb_info(e, info, &argc, argv, nullptr, nullptr); }
  napi_value at(size_t i) const {
    if (i >= argc) throw std::invalid_argument("missing argument " + std::to_string(i));
    return argv[i];
  }
  double num(size_t i) const {
    double v;
    if (napi_get_value_double(env, at(i), &v) != napi_ok)
      throw std::invalid_argument("argument " + std::to_string(i) + " must be a number");
    return v;
  }
  int64_t i64(size_t i) const { return static_cast<int64_t>(num(i)); }
  bool flag(size_t i) const {
    bool v;
    if (napi_get_value_bool(env, at(i), &v) != napi_ok)
      throw std::invalid_argument("argument " + std::to_string(i) + " must be a boolean");
    return v;
  }
  /** A device address (0 means none). */
  void *ptr(size_t i) const { return reinterpret_cast<void *>(static_cast<uintptr_t>(num(i))); }
  ET et(size_t i) const { return static_cast<ET>(i64(i)); }
  std::vector<int64_t> ints(size_t i) const {
    uint32_t n = 0;
    if (napi_get_array_length(env, at(i), &n) != napi_ok)
      throw std::invalid_argument("argument " + std::to_string(i) + " must be an array");
    std::vector<int64_t> out(n);
    for (uint32_t j = 0; j < n; j++) {
      napi_value e;
      double v;
      napi_get_element(env, at(i), j, &e);
      napi_get_value_double(env, e, &v);
      out[j] = static_cast<int64_t>(v);
    }
    return out;
  }
  /** Host bytes of a typed array (nullptr for null/undefined). */
  void *bytes(size_t i, size_t *length = nullptr) const {
    napi_valuetype vt;
    napi_typeof(env, at(i), &vt);
    if (vt == napi_null || vt == napi_undefined) {
      if (length) *length = 0;
      return nullptr;
    }
    napi_typedarray_type type;
    size_t n;
    void *data;
    napi_value ab;
    size_t off;
    if (napi_get_typedarray_info(env, at(i), &type, &n, &data, &ab, &off) != napi_ok)
      throw std::invalid_argument("argument " + std::to_string(i) + " must be a typed array");
    static const size_t kWidth[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 2};
    if (length) *length = n * kWidth[type];
    return data;
  }
  double field(size_t i, const char *name) const {
    napi_value v;
    double d;
    if (napi_get_named_property(env, at(i), name, &v) != napi_ok || napi_get_value_double(env, v, &d) != napi_ok)
      throw std::invalid_argument(std::string("descriptor field ") + name + " must be a number");
    return d;
  }
  bool fieldFlag(size_t i, const char *name) const {
    napi_value v;
    bool b;
    if (napi_get_named_property(env, at(i), name, &v) != napi_ok || napi_get_value_bool(env, v, &b) != napi_ok)
      throw std::invalid_argument(std::string("descriptor field ") + name + " must be a boolean");
    return b;
  }
};

napi_value number(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

napi_value string(napi_env env, const std::string &s) {
  napi_value r;
  napi_create_string_utf8(env, s.c_str(), s.size(), &r);
  return r;
}

void set(napi_env env, napi_value obj, const char *name, napi_value v) { napi_set_named_property(env, obj, name, v); }

void throw_error(napi_env env, const char *code, const std::string &msg) {
  napi_value err;
  napi_create_error(env, string(env, code), string(env, msg), &err);
  napi_throw(env, err);
}

/** Runs a binding body, turning C++ exceptions into JS errors. */
template <typename F>
napi_value guarded(napi_env env, F body) {
  try {
    return body();
  } catch (const OutOfMemory &e) {
    napi_value err;
    napi_create_error(env, string(env, "ERR_LONGSHOT_OOM"), string(env, e.what()), &err);
    set(env, err, "requested", number(env, static_cast<double>(e.requested)));
    set(env, err, "free", number(env, static_cast<double>(e.freeBytes)));
    set(env, err, "held", number(env, static_cast<double>(e.heldBytes)));
    napi_throw(env, err);
  } catch (const std::invalid_argument &e) {
    throw_error(env, "ERR_LONGSHOT_ARGUMENT", e.what());
  } catch (const std::exception &e) {
    throw_error(env, "ERR_LONGSHOT_CUDA", e.what());
  }
  return nullptr;
}

#define LS_FN(name) napi_value name(napi_env env, napi_callback_info info)
#define LS_BODY(...) return guarded(env, [&]() -> napi_value { Args a(env, info); __VA_ARGS__ return nullptr; })

DT dt_of(ET t) {
  if (t == ET::F32) return DT::F32;
  if (t == ET::BF16) return DT::BF16;
  throw std::invalid_argument("this kernel supports f32 and bf16 only");
}

// ---- device and memory ------------------------------------------------------------------------------

LS_FN(init) {
  LS_BODY({
    if (!g_dev) {
      int count = 0;
      const cudaError_t e = cudaGetDeviceCount(&count);
      if (e != cudaSuccess || count == 0)
        throw std::runtime_error(std::string("no CUDA GPU is visible (") +
                                 (e == cudaSuccess ? "0 devices" : cudaGetErrorString(e)) + ")");
      auto d = std::make_unique<Device>();
      LS_CUDA_CHECK(cudaSetDevice(0));
      LS_CUDA_CHECK(cudaGetDeviceProperties(&d->prop, 0));
      LS_CUDA_CHECK(cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking));
      d->staging = std::make_unique<Staging>();
      d->blas = std::make_unique<Blas>();
      g_dev = d.release();
    }
    napi_value r;
    napi_create_object(env, &r);
    set(env, r, "name", string(env, g_dev->prop.name));
    set(env, r, "computeCapability", number(env, g_dev->prop.major * 10 + g_dev->prop.minor));
    set(env, r, "totalMemory", number(env, static_cast<double>(g_dev->prop.totalGlobalMem)));
    set(env, r, "cublasLt", string(env, g_dev->blas->library()));
    return r;
  });
}

LS_FN(alloc) { LS_BODY({ return number(env, static_cast<double>(reinterpret_cast<uintptr_t>(dev().alloc.allocate(a.i64(0))))); }); }
LS_FN(release) { LS_BODY({ dev().alloc.release(a.ptr(0)); }); }
LS_FN(memory) {
  LS_BODY({
    const MemoryStats s = dev().alloc.stats();
    napi_value r;
    napi_create_array_with_length(env, 3, &r);
    napi_set_element(env, r, 0, number(env, static_cast<double>(s.current)));
    napi_set_element(env, r, 1, number(env, static_cast<double>(s.peak)));
    napi_set_element(env, r, 2, number(env, static_cast<double>(s.reserved)));
    return r;
  });
}
LS_FN(resetPeak) { LS_BODY({ dev().alloc.resetPeak(); }); }
LS_FN(emptyCache) {
  LS_BODY({
    LS_CUDA_CHECK(cudaStreamSynchronize(dev().stream));
    dev().alloc.emptyCache();
  });
}
LS_FN(upload) {
  LS_BODY({
    size_t n;
    const void *src = a.bytes(1, &n);
    dev().staging->upload(static_cast<char *>(a.ptr(0)), static_cast<const char *>(src), n, dev().stream);
  });
}
LS_FN(download) {
  LS_BODY({
    size_t n;
    void *dst = a.bytes(1, &n);
    dev().staging->download(static_cast<char *>(dst), static_cast<const char *>(a.ptr(0)), n, dev().stream);
    take_embedding_error(dev().stream);  // errors found on the device surface where the host waits
  });
}
LS_FN(synchronize) { LS_BODY({ take_embedding_error(dev().stream); }); }

// ---- profiling: timestamps recorded on the stream, read back after the work (no synchronisation per op) ----

/** Events recorded by profileMark since the last profileRead (the pool is reused between reads). */
struct Marks {
  std::vector<cudaEvent_t> pool;
  size_t used = 0;
};
Marks &marks() {
  static Marks m;
  return m;
}
LS_FN(profileMark) {
  LS_BODY({
    Marks &m = marks();
    if (m.used == m.pool.size()) {
      cudaEvent_t e;
      LS_CUDA_CHECK(cudaEventCreate(&e));
      m.pool.push_back(e);
    }
    LS_CUDA_CHECK(cudaEventRecord(m.pool[m.used], dev().stream));
    return number(env, static_cast<double>(m.used++));
  });
}
/** Waits for the stream, then returns each mark's time in ms after the first, and forgets the marks. */
LS_FN(profileRead) {
  LS_BODY({
    Marks &m = marks();
    LS_CUDA_CHECK(cudaStreamSynchronize(dev().stream));
    napi_value r;
    napi_create_array_with_length(env, m.used, &r);
    for (size_t i = 0; i < m.used; i++) {
      float ms = 0.f;
      if (i) LS_CUDA_CHECK(cudaEventElapsedTime(&ms, m.pool[0], m.pool[i]));
      napi_set_element(env, r, static_cast<uint32_t>(i), number(env, ms));
    }
    m.used = 0;
    return r;
  });
}

// ---- kernels ------------------------------------------------------------------------------------------

LS_FN(cast) { LS_BODY({ launch_cast(a.ptr(0), a.et(1), a.ptr(2), a.et(3), a.i64(4), dev().stream); }); }
LS_FN(fill) { LS_BODY({ launch_fill(a.ptr(0), a.et(1), a.i64(2), a.num(3), dev().stream); }); }
LS_FN(unary) {
  LS_BODY({ launch_unary(a.ptr(0), a.ptr(1), a.et(2), a.i64(3), static_cast<UnaryOp>(a.i64(4)), dev().stream); });
}
LS_FN(binary) {
  LS_BODY({
    const auto shape = a.ints(5), as = a.ints(6), bs = a.ints(7);
    LS_REQUIRE(shape.size() <= kMaxRank * 2 && as.size() == shape.size() && bs.size() == shape.size(),
               "binary: shape and strides differ in rank");
    launch_binary(a.ptr(0), a.ptr(1), a.ptr(2), a.et(3), static_cast<BinaryOp>(a.i64(4)),
                  static_cast<int>(shape.size()), shape.data(), as.data(), bs.data(), dev().stream);
  });
}
LS_FN(affine) {
  LS_BODY({
    launch_affine(a.ptr(0), a.ptr(1), a.et(2), a.i64(3), static_cast<float>(a.num(4)), static_cast<float>(a.num(5)),
                  dev().stream);
  });
}
LS_FN(matmul) {
  LS_BODY({
    MatmulArgs g{a.ptr(0), a.ptr(1), a.ptr(2), a.ptr(3), a.et(4), a.i64(5), a.i64(6), a.i64(7), a.i64(8),
                 a.flag(9), a.flag(10), a.flag(11), static_cast<float>(a.num(12)), a.et(13)};
    dev().blas->matmul(g, dev().stream);
  });
}
LS_FN(rmsNorm) {
  LS_BODY({
    launch_rms_norm(a.ptr(0), a.ptr(1), a.et(2), a.ptr(3), a.et(4), a.ptr(5), a.i64(6), a.i64(7), a.i64(8),
                    static_cast<float>(a.num(9)), a.flag(10), a.ptr(11), a.ptr(12), dev().stream);
  });
}
LS_FN(layerNorm) {
  LS_BODY({
    launch_layer_norm(a.ptr(0), a.ptr(1), a.et(2), a.ptr(3), a.ptr(4), a.et(5), a.i64(6), a.i64(7),
                      static_cast<float>(a.num(8)), a.ptr(9), a.ptr(10), dev().stream);
  });
}
LS_FN(softmax) { LS_BODY({ launch_softmax(a.ptr(0), a.ptr(1), a.et(2), a.i64(3), a.i64(4), dev().stream); }); }
LS_FN(rotary) {
  LS_BODY({
    launch_rotary(a.ptr(0), a.ptr(1), a.et(2), static_cast<const float *>(a.ptr(3)),
                  static_cast<const float *>(a.ptr(4)), a.i64(5), a.i64(6), a.i64(7), a.i64(8), a.i64(9), a.flag(10),
                  dev().stream);
  });
}
LS_FN(ropeTable) {
  LS_BODY({
    launch_rope_table(static_cast<float *>(a.ptr(0)), static_cast<float *>(a.ptr(1)),
                      static_cast<const float *>(a.ptr(2)), static_cast<const float *>(a.ptr(3)),
                      static_cast<const int32_t *>(a.ptr(4)), a.i64(5), a.i64(6), dev().stream);
  });
}
LS_FN(embedding) {
  LS_BODY({
    launch_embedding(a.ptr(0), a.ptr(1), a.et(2), static_cast<const int32_t *>(a.ptr(3)), a.i64(4), a.i64(5),
                     a.i64(6), dev().stream);
  });
}
LS_FN(embeddingBag) {
  // embeddingBag(out, table, et, ids, nIds, offsets, bags, vocab, dim, mean)
  LS_BODY({
    launch_embedding_bag(a.ptr(0), a.ptr(1), a.et(2), static_cast<const int32_t *>(a.ptr(3)), a.i64(4),
                         static_cast<const int32_t *>(a.ptr(5)), a.i64(6), a.i64(7), a.i64(8), a.i64(9) != 0,
                         dev().stream);
  });
}
LS_FN(readSlice) {
  LS_BODY({
    launch_read_slice(a.ptr(0), a.ptr(1), a.i64(2), a.i64(3), a.i64(4), a.i64(5), a.i64(6), a.i64(7), dev().stream);
  });
}
LS_FN(writeSlice) {
  LS_BODY({
    launch_write_slice(a.ptr(0), a.ptr(1), a.i64(2), a.i64(3), a.i64(4), a.i64(5), a.i64(6), a.i64(7), dev().stream);
  });
}
LS_FN(permute) {
  LS_BODY({
    const auto shape = a.ints(3), perm64 = a.ints(4);
    LS_REQUIRE(shape.size() == perm64.size(), "permute: shape and perm differ in rank");
    std::vector<int> perm(perm64.begin(), perm64.end());
    launch_permute(a.ptr(0), a.ptr(1), a.i64(2), static_cast<int>(shape.size()), shape.data(), perm.data(),
                   dev().stream);
  });
}
LS_FN(flip) { LS_BODY({ launch_flip(a.ptr(0), a.ptr(1), a.i64(2), a.i64(3), a.i64(4), a.i64(5), dev().stream); }); }
LS_FN(reduce) {
  LS_BODY({
    const size_t wsBytes = reduce_workspace_bytes(a.i64(4), a.i64(5), a.i64(6));
    Scratch ws(wsBytes);
    launch_reduce(a.ptr(0), a.ptr(1), a.et(2), static_cast<ReduceOp>(a.i64(3)), a.i64(4), a.i64(5), a.i64(6), ws.p,
                  dev().stream);
  });
}
LS_FN(argmax) {
  LS_BODY({ launch_argmax(static_cast<int32_t *>(a.ptr(0)), a.ptr(1), a.et(2), a.i64(3), a.i64(4), dev().stream); });
}
LS_FN(sample) {
  // sample(out, logits, et, uniforms: Float32Array, previous, nPrevious, rows, vocab, temperature, topK, topP, penalty)
  LS_BODY({
    SampleParams p{a.i64(6), a.i64(7), static_cast<float>(a.num(8)), a.i64(9), static_cast<float>(a.num(10)),
                   static_cast<float>(a.num(11)), a.i64(5)};
    size_t ub;
    const void *uniforms = a.bytes(3, &ub);
    Scratch u(ub), scratch(size_t(p.rows) * p.vocab * kSampleScratchBytes);
    dev().staging->upload(static_cast<char *>(u.p), static_cast<const char *>(uniforms), ub, dev().stream);
    launch_sample(static_cast<int32_t *>(a.ptr(0)), a.ptr(1), a.et(2), static_cast<const float *>(u.p),
                  static_cast<const int32_t *>(a.ptr(4)), scratch.p, p, dev().stream);
  });
}

#ifdef LS_HAVE_ATTENTION
LS_FN(attention_) {
  // attention(out, q, k, v, mask, maskBatch, weights, et, desc, segments: Int32Array | null)
  LS_BODY({
    size_t segBytes;
    const auto *segments = static_cast<const int32_t *>(a.bytes(9, &segBytes));
    AttentionDims d{};
    d.batch = static_cast<int>(a.field(8, "batch"));
    d.sq = static_cast<int>(a.field(8, "sq"));
    d.skv = static_cast<int>(a.field(8, "skv"));
    d.kvLength = static_cast<int>(a.field(8, "kvLength"));
    d.hq = static_cast<int>(a.field(8, "hq"));
    d.hkv = static_cast<int>(a.field(8, "hkv"));
    d.d = static_cast<int>(a.field(8, "d"));
    d.dv = static_cast<int>(a.field(8, "dv"));
    d.scale = static_cast<float>(a.field(8, "scale"));
    d.causal = a.fieldFlag(8, "causal");
    d.queryOffset = static_cast<int>(a.field(8, "queryOffset"));
    d.numSegments = segments ? static_cast<int>(segBytes / sizeof(int32_t)) - 1 : 0;
    d.maskBatch = static_cast<int>(a.i64(5));
    d.weights = a.ptr(6) != nullptr;
    const DT dt = dt_of(a.et(7));
    const size_t wsBytes = attention_workspace_bytes(d, dt);
    Scratch ws(wsBytes);
    attention(a.ptr(0), a.ptr(1), a.ptr(2), a.ptr(3), static_cast<const float *>(a.ptr(4)),
              static_cast<float *>(a.ptr(6)), segments, d, dt, ws.p, wsBytes, dev().stream);
  });
}
#endif

LS_FN(attentionMass_) {
  // attentionMass(out, scores, stats, q, k, et, desc)
  LS_BODY({
    const AttentionMassDims d{static_cast<int>(a.field(6, "skv")),  static_cast<int>(a.field(6, "kvLength")),
                              static_cast<int>(a.field(6, "hq")),   static_cast<int>(a.field(6, "hkv")),
                              static_cast<int>(a.field(6, "d")),    static_cast<int>(a.field(6, "from")),
                              static_cast<int>(a.field(6, "to")),   static_cast<float>(a.field(6, "scale"))};
    attention_mass(static_cast<float *>(a.ptr(0)), static_cast<float *>(a.ptr(1)), static_cast<float *>(a.ptr(2)),
                   a.ptr(3), a.ptr(4), d, dt_of(a.et(5)), dev().stream);
  });
}

#ifdef LS_HAVE_SSD
SsdDims ssd_dims(const Args &a, size_t i) {
  return {static_cast<int>(a.field(i, "batch")),   static_cast<int>(a.field(i, "len")),
          static_cast<int>(a.field(i, "heads")),   static_cast<int>(a.field(i, "headDim")),
          static_cast<int>(a.field(i, "groups")),  static_cast<int>(a.field(i, "dState")),
          static_cast<int>(a.field(i, "chunkSize"))};
}
LS_FN(ssdScan_) {
  // ssdScan(y, stateOut, x, dt, A, B, C, D, dEt, state, et, desc)
  LS_BODY({
    const SsdDims d = ssd_dims(a, 11);
    const DT dt = dt_of(a.et(10));
    const DT dDt = a.ptr(7) ? dt_of(a.et(8)) : DT::F32;
    const size_t wsBytes = ssd_scan_workspace_bytes(d, dt);
    Scratch ws(wsBytes);
    ssd_scan(a.ptr(0), static_cast<float *>(a.ptr(1)), a.ptr(2), static_cast<const float *>(a.ptr(3)),
             static_cast<const float *>(a.ptr(4)), a.ptr(5), a.ptr(6), a.ptr(7), dDt,
             static_cast<const float *>(a.ptr(9)), d, dt, ws.p, wsBytes, dev().stream);
  });
}
LS_FN(ssmStep_) {
  // ssmStep(y, state, x, dt, A, B, C, D, dEt, et, desc)
  LS_BODY({
    const SsdDims d = ssd_dims(a, 10);
    const DT dDt = a.ptr(7) ? dt_of(a.et(8)) : DT::F32;
    ssm_step(a.ptr(0), static_cast<float *>(a.ptr(1)), a.ptr(2), static_cast<const float *>(a.ptr(3)),
             static_cast<const float *>(a.ptr(4)), a.ptr(5), a.ptr(6), a.ptr(7), dDt, d, dt_of(a.et(9)),
             dev().stream);
  });
}
#endif

#ifdef LS_HAVE_CONV1D
LS_FN(conv1d_) {
  // conv1d(y, stateOut, x, weight, bias, state, et, wEt, desc)
  LS_BODY({
    const Conv1dDims d{static_cast<int>(a.field(8, "batch")), static_cast<int>(a.field(8, "len")),
                       static_cast<int>(a.field(8, "channels")), static_cast<int>(a.field(8, "width")),
                       a.fieldFlag(8, "silu")};
    conv1d(a.ptr(0), a.ptr(1), a.ptr(2), a.ptr(3), a.ptr(4), a.ptr(5), d, dt_of(a.et(6)), dt_of(a.et(7)),
             dev().stream);
  });
}
#endif

#ifdef LS_HAVE_DECODE
/** A Float64Array of device addresses (and small integers), `per` values per row. */
const double *table(const Args &a, size_t i, size_t per, int *rows) {
  size_t bytes;
  const auto *t = static_cast<const double *>(a.bytes(i, &bytes));
  *rows = static_cast<int>(bytes / sizeof(double) / per);
  return t;
}
const void *addr(double v) { return reinterpret_cast<const void *>(static_cast<uintptr_t>(v)); }

LS_FN(attentionRows_) {
  // attentionRows(out, q, table: Float64Array [k, v, length, prefixK, prefixV, prefixLength]·rows, et, desc)
  LS_BODY({
    int rows;
    const double *t = table(a, 2, 6, &rows);
    std::vector<RowKV> kvs(rows);
    for (int i = 0; i < rows; i++) {
      const double *r = t + 6 * i;
      kvs[i] = {addr(r[0]), addr(r[1]), static_cast<int>(r[2]), addr(r[3]), addr(r[4]), static_cast<int>(r[5])};
    }
    const AttentionRowsDims d{rows,
                              static_cast<int>(a.field(4, "hq")),
                              static_cast<int>(a.field(4, "hkv")),
                              static_cast<int>(a.field(4, "d")),
                              static_cast<int>(a.field(4, "dv")),
                              static_cast<float>(a.field(4, "scale"))};
    const size_t wsBytes = attention_rows_workspace_bytes(d, kvs.data(), a.ptr(1), dt_of(a.et(3)));
    Scratch ws(wsBytes);
    attention_rows(a.ptr(0), a.ptr(1), kvs.data(), d, dt_of(a.et(3)), ws.p, wsBytes, dev().stream);
  });
}
LS_FN(scatterRows_) {
  // scatterRows(x, dsts: Float64Array, rowBytes)
  LS_BODY({
    int rows;
    const double *t = table(a, 1, 1, &rows);
    std::vector<void *> dsts(rows);
    for (int i = 0; i < rows; i++) dsts[i] = const_cast<void *>(addr(t[i]));
    scatter_rows(a.ptr(0), dsts.data(), rows, static_cast<size_t>(a.i64(2)), dev().stream);
  });
}
LS_FN(mambaStepRows_) {
  // mambaStepRows(y, x, bc, dtRaw, weight, bias, wEt, dtBias, A, D, dEt, states: Float64Array [conv, ssm]·rows,
  //               et, desc)
  LS_BODY({
    int rows;
    const double *t = table(a, 11, 2, &rows);
    std::vector<MambaRowState> states(rows);
    for (int i = 0; i < rows; i++)
      states[i] = {const_cast<void *>(addr(t[2 * i])), static_cast<float *>(const_cast<void *>(addr(t[2 * i + 1])))};
    const MambaStepDims d{rows,
                          static_cast<int>(a.field(13, "dInner")),
                          static_cast<int>(a.field(13, "groups")),
                          static_cast<int>(a.field(13, "dState")),
                          static_cast<int>(a.field(13, "heads")),
                          static_cast<int>(a.field(13, "headDim")),
                          static_cast<int>(a.field(13, "width")),
                          static_cast<float>(a.field(13, "dtMin")),
                          static_cast<float>(a.field(13, "dtMax"))};
    const DT dt = dt_of(a.et(12));
    const size_t wsBytes = mamba_step_rows_workspace_bytes(d, dt);
    Scratch ws(wsBytes);
    const DT dDt = a.ptr(9) ? dt_of(a.et(10)) : DT::F32;
    mamba_step_rows(a.ptr(0), a.ptr(1), a.ptr(2), a.ptr(3), a.ptr(4), a.ptr(5), dt_of(a.et(6)),
                    static_cast<const float *>(a.ptr(7)), static_cast<const float *>(a.ptr(8)), a.ptr(9), dDt,
                    states.data(), d, dt, ws.p, wsBytes, dev().stream);
  });
}
#endif


#ifdef LS_HAVE_GRAD
// ---- backward kernels, losses, AdamW (grad.h) -------------------------------------------------------------

float *fptr(const Args &a, size_t i) { return static_cast<float *>(a.ptr(i)); }

LS_FN(ssdScanBackward) {
  // ssdScanBackward(dx, ddt, dA, dB, dC, dD, dState, dy, dStateOut, x, dt, A, B, C, D, dEt, state, et, desc)
  LS_BODY({
    const SsdDims d = ssd_dims(a, 18);
    const size_t wsBytes = ssd_scan_backward_workspace_bytes(d);
    Scratch ws(wsBytes);
    ssd_scan_backward(a.ptr(0), fptr(a, 1), fptr(a, 2), a.ptr(3), a.ptr(4), fptr(a, 5), fptr(a, 6), a.ptr(7),
                      fptr(a, 8), a.ptr(9), fptr(a, 10), fptr(a, 11), a.ptr(12), a.ptr(13), a.ptr(14), a.et(15),
                      fptr(a, 16), d, a.et(17), ws.p, wsBytes, dev().stream);
  });
}
LS_FN(conv1dBackward) {
  // conv1dBackward(dx, dWeight, dBias, dState, dy, dStateOut, x, weight, bias, state, et, wEt, desc)
  LS_BODY({
    const Conv1dDims d{static_cast<int>(a.field(12, "batch")), static_cast<int>(a.field(12, "len")),
                       static_cast<int>(a.field(12, "channels")), static_cast<int>(a.field(12, "width")),
                       a.fieldFlag(12, "silu")};
    Scratch ws(conv1d_backward_workspace_bytes(d));
    conv1d_backward(a.ptr(0), fptr(a, 1), fptr(a, 2), a.ptr(3), a.ptr(4), a.ptr(5), a.ptr(6), a.ptr(7), a.ptr(8),
                    a.ptr(9), d, a.et(10), a.et(11), ws.p, dev().stream);
  });
}
LS_FN(attentionBackward) {
  // attentionBackward(dq, dk, dv, dOut, q, k, v, out, mask, maskBatch, et, desc, ranges: Int32Array [lo, hi]·sq,
  //                   queryRanges: Int32Array [lo, hi]·skv)
  LS_BODY({
    size_t rangeBytes, queryRangeBytes;
    const auto *ranges = static_cast<const int32_t *>(a.bytes(12, &rangeBytes));
    const auto *queryRanges = static_cast<const int32_t *>(a.bytes(13, &queryRangeBytes));
    const AttnGradDims d{static_cast<int>(a.field(11, "batch")), static_cast<int>(a.field(11, "sq")),
                         static_cast<int>(a.field(11, "skv")),   static_cast<int>(a.field(11, "kvLength")),
                         static_cast<int>(a.field(11, "hq")),    static_cast<int>(a.field(11, "hkv")),
                         static_cast<int>(a.field(11, "d")),     static_cast<int>(a.field(11, "dv")),
                         static_cast<float>(a.field(11, "scale")), static_cast<int>(a.i64(9))};
    LS_REQUIRE(rangeBytes == sizeof(int32_t) * 2 * size_t(d.sq), "attentionBackward: ranges must hold 2·sq ints");
    LS_REQUIRE(queryRangeBytes == sizeof(int32_t) * 2 * size_t(d.skv),
               "attentionBackward: queryRanges must hold 2·skv ints");
    const size_t wsBytes = attention_backward_workspace_bytes(d);
    Scratch ws(wsBytes);
    char *at = static_cast<char *>(ws.p);
    dev().staging->upload(at, reinterpret_cast<const char *>(ranges), rangeBytes, dev().stream);
    dev().staging->upload(at + rangeBytes, reinterpret_cast<const char *>(queryRanges), queryRangeBytes, dev().stream);
    attention_backward(a.ptr(0), a.ptr(1), a.ptr(2), a.ptr(3), a.ptr(4), a.ptr(5), a.ptr(6), a.ptr(7), fptr(a, 8), d,
                       a.et(10), ws.p, wsBytes, dev().stream);
  });
}
LS_FN(rmsNormBackward) {
  // rmsNormBackward(dx, dWeight, dGate, dy, x, weight, wEt, gate, dSum, rows, dim, groupSize, eps, normBeforeGate, et)
  LS_BODY({
    rms_norm_backward(a.ptr(0), fptr(a, 1), a.ptr(2), a.ptr(3), a.ptr(4), a.ptr(5), a.et(6), a.ptr(7), a.ptr(8),
                      a.i64(9), a.i64(10), a.i64(11), static_cast<float>(a.num(12)), a.flag(13), a.et(14),
                      dev().stream);
  });
}
LS_FN(layerNormBackward) {
  // layerNormBackward(dx, dWeight, dBias, dy, x, weight, wEt, dSum, rows, dim, eps, et)
  LS_BODY({
    layer_norm_backward(a.ptr(0), fptr(a, 1), fptr(a, 2), a.ptr(3), a.ptr(4), a.ptr(5), a.et(6), a.ptr(7),
                        a.i64(8), a.i64(9), static_cast<float>(a.num(10)), a.et(11), dev().stream);
  });
}
LS_FN(embeddingBackward) {
  // embeddingBackward(dTable, dOut, et, ids, n, vocab, dim)
  LS_BODY({
    embedding_backward(fptr(a, 0), a.ptr(1), a.et(2), static_cast<const int32_t *>(a.ptr(3)), a.i64(4), a.i64(5),
                       a.i64(6), dev().stream);
  });
}
LS_FN(crossEntropy) {
  // crossEntropy(loss, dLogits, logits, et, targets, rows, vocab, ignoreIndex, gradScale)
  LS_BODY({
    Scratch ws(kLossWorkspaceBytes);
    cross_entropy(fptr(a, 0), a.ptr(1), a.ptr(2), a.et(3), static_cast<const int32_t *>(a.ptr(4)), a.i64(5),
                  a.i64(6), static_cast<int>(a.i64(7)), static_cast<float>(a.num(8)), ws.p, dev().stream);
  });
}
LS_FN(klTopK) {
  // klTopK(loss, dLogits, logits, et, ids, teacher, rows, vocab, k, gradScale)
  LS_BODY({
    Scratch ws(kLossWorkspaceBytes);
    kl_top_k(fptr(a, 0), a.ptr(1), a.ptr(2), a.et(3), static_cast<const int32_t *>(a.ptr(4)), fptr(a, 5), a.i64(6),
             a.i64(7), a.i64(8), static_cast<float>(a.num(9)), ws.p, dev().stream);
  });
}
/**
 * The slot table of a multi-tensor call from a Float64Array of `width` numbers per slot (p, m, v, g, copy, n, wd:
 * device addresses, element count, weight decay), uploaded to scratch memory; returns the total element count.
 */
int64_t upload_slots(const Args &a, size_t i, size_t width, float lr, std::unique_ptr<Scratch> &table, int *count) {
  size_t bytes;
  const double *d = static_cast<const double *>(a.bytes(i, &bytes));
  const size_t n = bytes / sizeof(double) / width;
  if (!d || n * width * sizeof(double) != bytes || !n)
    throw std::invalid_argument("the slot table must hold " + std::to_string(width) + " numbers per slot");
  std::vector<MultiSlot> slots(n);
  int64_t total = 0;
  for (size_t k = 0; k < n; k++) {
    const double *r = d + k * width;
    auto at = [&](size_t j) { return reinterpret_cast<void *>(static_cast<uintptr_t>(r[j])); };
    const double wd = width > 6 ? r[6] : 0.0;
    slots[k] = {static_cast<float *>(at(0)), static_cast<float *>(at(1)), static_cast<float *>(at(2)),
                static_cast<const float *>(at(3)), at(4), total, static_cast<int64_t>(r[5]),
                static_cast<float>(1.0 - double(lr) * wd)};
    total += slots[k].n;
  }
  table = std::make_unique<Scratch>(n * sizeof(MultiSlot));
  dev().staging->upload(static_cast<char *>(table->p), reinterpret_cast<const char *>(slots.data()),
                        n * sizeof(MultiSlot), dev().stream);
  *count = static_cast<int>(n);
  return total;
}
LS_FN(adamwSteps) {
  // adamwSteps(slots: Float64Array [p, m, v, g, copy, n, wd]·k, anyCopy, copyEt, lr, beta1, beta2, eps, step, gradScale)
  LS_BODY({
    const float lr = static_cast<float>(a.num(3));
    std::unique_ptr<Scratch> table;
    int n;
    const int64_t total = upload_slots(a, 0, 7, lr, table, &n);
    adamw_multi(static_cast<const MultiSlot *>(table->p), n, total, a.ptr(1), a.et(2), lr,
                static_cast<float>(a.num(4)), static_cast<float>(a.num(5)), static_cast<float>(a.num(6)), a.i64(7),
                static_cast<float>(a.num(8)), dev().stream);
  });
}
LS_FN(sumSquares) {
  // sumSquares(out, slots: Float64Array [0, 0, 0, g, 0, n]·k)
  LS_BODY({
    std::unique_ptr<Scratch> table;
    int n;
    const int64_t total = upload_slots(a, 1, 6, 0.f, table, &n);
    Scratch partials(sizeof(float) * static_cast<size_t>(total ? multi_blocks(total) : 1));
    sum_squares_multi(fptr(a, 0), static_cast<const MultiSlot *>(table->p), n, total,
                      static_cast<float *>(partials.p), dev().stream);
  });
}
#endif
}  // namespace

#define LS_EXPORT(fn) {#fn, nullptr, fn, nullptr, nullptr, nullptr, napi_enumerable, nullptr}
// Bindings named like the launch functions they call carry a trailing underscore.
#define LS_EXPORT_AS(fn) {#fn, nullptr, fn##_, nullptr, nullptr, nullptr, napi_enumerable, nullptr}

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      LS_EXPORT(init),       LS_EXPORT(alloc),      LS_EXPORT(release),  LS_EXPORT(memory),
      LS_EXPORT(resetPeak),  LS_EXPORT(emptyCache), LS_EXPORT(upload),   LS_EXPORT(download),
      LS_EXPORT(profileMark), LS_EXPORT(profileRead),
      LS_EXPORT(synchronize), LS_EXPORT(cast),      LS_EXPORT(fill),     LS_EXPORT(unary),
      LS_EXPORT(binary),     LS_EXPORT(affine),     LS_EXPORT(matmul),   LS_EXPORT(rmsNorm),
      LS_EXPORT(layerNorm),  LS_EXPORT(softmax),    LS_EXPORT(rotary),   LS_EXPORT(ropeTable), LS_EXPORT(embedding), LS_EXPORT(embeddingBag),
      LS_EXPORT(readSlice),  LS_EXPORT(writeSlice), LS_EXPORT(permute),  LS_EXPORT(flip),
      LS_EXPORT(reduce),     LS_EXPORT(argmax),     LS_EXPORT(sample),     LS_EXPORT_AS(attentionMass),
#ifdef LS_HAVE_ATTENTION
      LS_EXPORT_AS(attention),
#endif
#ifdef LS_HAVE_SSD
      LS_EXPORT_AS(ssdScan), LS_EXPORT_AS(ssmStep),
#endif
#ifdef LS_HAVE_CONV1D
      LS_EXPORT_AS(conv1d),
#endif
#ifdef LS_HAVE_GRAD
      LS_EXPORT(ssdScanBackward), LS_EXPORT(conv1dBackward), LS_EXPORT(attentionBackward),
      LS_EXPORT(rmsNormBackward), LS_EXPORT(layerNormBackward), LS_EXPORT(embeddingBackward),
      LS_EXPORT(crossEntropy), LS_EXPORT(klTopK), LS_EXPORT(adamwSteps), LS_EXPORT(sumSquares),
#endif
#ifdef LS_HAVE_DECODE
      LS_EXPORT_AS(attentionRows), LS_EXPORT_AS(scatterRows), LS_EXPORT_AS(mambaStepRows),
#endif
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
