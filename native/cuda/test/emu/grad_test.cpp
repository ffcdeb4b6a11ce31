// Runs one launch function of grad.cu under the CPU emulation on the arrays of a case file and writes its outputs
// (native/cuda/test/emu/check.sh grad; the cases and their CPU-backend references come from grad_cases.ts).
//   grad_test in.bin out.bin
// File format (little endian): u32 count, then per array: u32 name length, name, u32 kind (0 f32, 1 i32, 2 f64),
// u64 length, the values. `op` (i32) names the function, `dims` (f64) its sizes; absent optional inputs are
// absent arrays, and outputs are written for every gradient the function produced.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "grad.h"

namespace {

struct Array {
  uint32_t kind = 0;
  std::vector<unsigned char> bytes;
  void *ptr() { return bytes.empty() ? nullptr : bytes.data(); }
};
std::map<std::string, Array> in, out;

std::map<std::string, Array> read(const char *path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(std::string("cannot read ") + path);
  auto get = [&](void *p, size_t n) { f.read(static_cast<char *>(p), static_cast<std::streamsize>(n)); };
  uint32_t count;
  get(&count, 4);
  std::map<std::string, Array> m;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t len;
    get(&len, 4);
    std::string name(len, ' ');
    get(name.data(), len);
    Array a;
    uint64_t n;
    get(&a.kind, 4);
    get(&n, 8);
    a.bytes.resize(n * (a.kind == 2 ? 8 : 4));
    get(a.bytes.data(), a.bytes.size());
    m[name] = std::move(a);
  }
  return m;
}

void write(const char *path) {
  std::ofstream f(path, std::ios::binary);
  auto put = [&](const void *p, size_t n) { f.write(static_cast<const char *>(p), static_cast<std::streamsize>(n)); };
  const uint32_t count = static_cast<uint32_t>(out.size());
  put(&count, 4);
  for (auto &[name, a] : out) {
    const uint32_t len = static_cast<uint32_t>(name.size());
    const uint64_t n = a.bytes.size() / 4;
    put(&len, 4);
    put(name.data(), len);
    put(&a.kind, 4);
    put(&n, 8);
    put(a.bytes.data(), a.bytes.size());
  }
}

void *opt(const char *name) { return in.count(name) ? in[name].ptr() : nullptr; }
float *fin(const char *name) { return static_cast<float *>(opt(name)); }
/** A new f32 output of n values filled with NaN bytes (a value the kernel never writes shows up). */
float *output(const char *name, size_t n) {
  Array &a = out[name];
  a.bytes.assign(n * 4, 0xff);
  return reinterpret_cast<float *>(a.bytes.data());
}
double dim(size_t i) { return reinterpret_cast<const double *>(in.at("dims").bytes.data())[i]; }
size_t count(const char *name) { return in.at(name).bytes.size() / 4; }

}  // namespace

/** The one elementwise launch grad.cu uses (f32 → f32 here); elementwise.cu is not emulated. */
void launch_cast(void *o, ET to, const void *x, ET from, size_t n, cudaStream_t) {
  if (to != ET::F32 || from != ET::F32) throw std::runtime_error("emu: launch_cast stands in for f32 only");
  std::memmove(o, x, n * 4);
}

int main(int argc, char **argv) {
  try {
    if (argc != 3) throw std::runtime_error("usage: grad_test in.bin out.bin");
    in = read(argv[1]);
    const int op = *reinterpret_cast<const int32_t *>(in.at("op").bytes.data());
    auto I = [](size_t k) { return static_cast<int>(dim(k)); };
    switch (op) {
      case 0: {  // ssd
        const SsdDims d{I(0), I(1), I(2), I(3), I(4), I(5), 64};
        // dims[6] ≠ 0: the least workspace (one slot: each block reverses every chunk of its head in turn).
        const size_t ws = ssd_scan_backward_workspace_bytes(d, in.at("dims").bytes.size() > 6 * 8 && dim(6) != 0);
        std::vector<unsigned char> w(ws, 0xff);
        ssd_scan_backward(output("dx", count("x")), output("ddt", count("dt")), output("dA", count("A")),
                          output("dB", count("B")), output("dC", count("C")),
                          opt("D") ? output("dD", count("D")) : nullptr,
                          opt("state") ? output("dState", count("state")) : nullptr, fin("dy"), fin("dStateOut"),
                          fin("x"), fin("dt"), fin("A"), fin("B"), fin("C"), opt("D"), ET::F32, fin("state"), d,
                          ET::F32, w.data(), ws, nullptr);
        break;
      }
      case 1: {  // conv1d
        const Conv1dDims d{I(0), I(1), I(2), I(3), dim(4) != 0};
        std::vector<unsigned char> w(conv1d_backward_workspace_bytes(d), 0xff);
        conv1d_backward(output("dx", count("x")), output("dWeight", count("weight")),
                        opt("bias") ? output("dBias", count("bias")) : nullptr,
                        opt("state") ? output("dState", count("state")) : nullptr, fin("dy"), fin("dStateOut"),
                        fin("x"), fin("weight"), fin("bias"), fin("state"), d, ET::F32, ET::F32, w.data(), nullptr);
        break;
      }
      case 2: {  // attention
        const AttnGradDims d{I(0), I(1), I(2), I(3), I(4), I(5), I(6), I(7), static_cast<float>(dim(8)), I(9)};
        const size_t ws = attention_backward_workspace_bytes(d);
        std::vector<unsigned char> w(ws, 0xff);
        // The ranges lead the workspace, as the addon copies them in.
        std::memcpy(w.data(), opt("ranges"), sizeof(int32_t) * 2 * d.sq);
        std::memcpy(w.data() + sizeof(int32_t) * 2 * d.sq, opt("qranges"), sizeof(int32_t) * 2 * d.skv);
        if (in.at("dims").bytes.size() > 10 * 8 && dim(10) != 0) {
          // bf16 (inputs already bf16 values): the tensor-core kernels' path; outputs widened back to f32.
          using B = std::vector<__nv_bfloat16>;
          auto narrow = [](const char *name) {
            B b(count(name));
            for (size_t i = 0; i < b.size(); i++) b[i] = __float2bfloat16(fin(name)[i]);
            return b;
          };
          B q = narrow("q"), k = narrow("k"), v = narrow("v"), o = narrow("out"), g = narrow("dOut");
          B dq(q.size(), __float2bfloat16(NAN)), dk(k.size(), __float2bfloat16(NAN)), dv(v.size(), __float2bfloat16(NAN));
          attention_backward(dq.data(), dk.data(), dv.data(), g.data(), q.data(), k.data(), v.data(), o.data(),
                             fin("mask"), d, ET::BF16, w.data(), ws, nullptr);
          auto widen = [](const char *name, const B &b) {
            float *f = output(name, b.size());
            for (size_t i = 0; i < b.size(); i++) f[i] = __bfloat162float(b[i]);
          };
          widen("dq", dq);
          widen("dk", dk);
          widen("dv", dv);
          break;
        }
        attention_backward(output("dq", count("q")), output("dk", count("k")), output("dv", count("v")),
                           fin("dOut"), fin("q"), fin("k"), fin("v"), fin("out"), fin("mask"), d, ET::F32, w.data(),
                           ws, nullptr);
        break;
      }
      case 3: {  // rmsNorm
        const int64_t rows = I(0), n = I(1);
        rms_norm_backward(output("dx", count("x")), opt("weight") ? output("dWeight", n) : nullptr,
                          opt("gate") ? output("dGate", count("gate")) : nullptr, fin("dy"), fin("x"), fin("weight"),
                          ET::F32, fin("gate"), fin("dSum"), rows, n, I(2), static_cast<float>(dim(3)), dim(4) != 0,
                          ET::F32, nullptr);
        break;
      }
      case 4: {  // layerNorm
        const int64_t rows = I(0), n = I(1);
        layer_norm_backward(output("dx", count("x")), opt("weight") ? output("dWeight", n) : nullptr,
                            opt("weight") ? output("dBias", n) : nullptr, fin("dy"), fin("x"), fin("weight"), ET::F32,
                            fin("dSum"), rows, n, static_cast<float>(dim(2)), ET::F32, nullptr);
        break;
      }
      case 5: {  // embedding
        embedding_backward(output("dTable", size_t(I(1)) * I(2)), fin("dOut"), ET::F32,
                           static_cast<const int32_t *>(opt("ids")), I(0), I(1), I(2), nullptr);
        break;
      }
      case 6:    // crossEntropy
      case 7: {  // klTopK
        std::vector<unsigned char> w(kLossWorkspaceBytes);
        float *loss = output("loss", 1);
        float *dl = output("dLogits", count("logits"));
        if (op == 6)
          cross_entropy(loss, dl, fin("logits"), ET::F32, static_cast<const int32_t *>(opt("targets")), I(0), I(1),
                        I(2), static_cast<float>(dim(3)), w.data(), nullptr);
        else
          kl_top_k(loss, dl, fin("logits"), ET::F32, static_cast<const int32_t *>(opt("ids")), fin("teacher"), I(0),
                   I(1), I(2), static_cast<float>(dim(3)), w.data(), nullptr);
        break;
      }
      case 8: {  // adamw over two slots (a third and the rest of the arrays), in place on copies of the inputs
        const int64_t n = static_cast<int64_t>(count("param")), a = n / 3;
        for (const char *k : {"param", "m", "v"}) out[k] = in[k];
        float *p = reinterpret_cast<float *>(out["param"].ptr()), *m = reinterpret_cast<float *>(out["m"].ptr());
        float *v = reinterpret_cast<float *>(out["v"].ptr()), *copy = output("copy", size_t(n));
        const float *g = fin("grad");
        const float lr = static_cast<float>(dim(0));
        const float decay = static_cast<float>(1.0 - double(lr) * dim(4));
        const MultiSlot slots[2] = {{p, m, v, g, copy, 0, a, decay},
                                    {p + a, m + a, v + a, g + a, copy + a, a, n - a, decay}};
        adamw_multi(slots, 2, n, copy, ET::F32, lr, static_cast<float>(dim(1)), static_cast<float>(dim(2)),
                    static_cast<float>(dim(3)), I(5), static_cast<float>(dim(6)), nullptr);
        break;
      }
      case 9: {  // Σx² over two slots
        const int64_t n = static_cast<int64_t>(count("x")), a = n / 2;
        const MultiSlot slots[2] = {{nullptr, nullptr, nullptr, fin("x"), nullptr, 0, a, 1.f},
                                    {nullptr, nullptr, nullptr, fin("x") + a, nullptr, a, n - a, 1.f}};
        std::vector<float> partials(size_t(std::max<int64_t>(1, multi_blocks(n))));
        sum_squares_multi(output("sum", 1), slots, 2, n, partials.data(), nullptr);
        break;
      }
      default:
        throw std::runtime_error("unknown op " + std::to_string(op));
    }
    write(argv[2]);
  } catch (const std::exception &e) {
    std::cerr << "grad_test: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
