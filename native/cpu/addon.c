/*
 * The native CPU addon (Node-API): gemm(isa, a, aOff, aRow, aCol, b, bOff, bRow, bCol, bType, c, cOff, ldc, m, n,
 * k, alpha, bias, biasOff, accumulate) over typed arrays (shared or not; offsets in elements), computed on the
 * calling thread, and softmaxRows(isa, s, sOff, rows, ld, width, lo, hi) (ls_softmax_rows_* in kernel.inc; lo and
 * hi are Int32Arrays). The worker pool calls them from every thread. isas() lists the kernels this CPU can run, best
 * last: "base" (16-byte vectors) everywhere, then "avx2" and "avx512" where CPUID reports them, or "neon" on arm64
 * (the kernel indices are fixed: base 0, avx2 1, avx512 2, neon 3).
 */
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

#define CHECK(call)                                                                                          \
  do {                                                                                                       \
    if ((call) != napi_ok) {                                                                                 \
      napi_throw_error(env, NULL, "longshot_cpu: bad argument to " #call);                                   \
      return NULL;                                                                                           \
    }                                                                                                        \
  } while (0)

#if defined(__x86_64__) || defined(_M_X64)
#define X86 1
static const ls_kernels_t ISAS[] = {LS_KERNELS(base), LS_KERNELS(avx2), LS_KERNELS(avx512), {"neon"}};
#elif defined(__aarch64__)
#define X86 0
static const ls_kernels_t ISAS[] = {LS_KERNELS(base), {"avx2"}, {"avx512"}, LS_KERNELS(neon)};
#else
#define X86 0
static const ls_kernels_t ISAS[] = {LS_KERNELS(base), {"avx2"}, {"avx512"}, {"neon"}};
#endif
enum { NISA = sizeof ISAS / sizeof ISAS[0] };

static int supported(int isa) {
#if X86
  __builtin_cpu_init();
  if (isa == 1) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == 2) return __builtin_cpu_supports("avx512f");
#endif
#if defined(__aarch64__)
  if (isa == 3) return 1; /* NEON is part of arm64 */
#endif
  return isa == 0;
}

/* Each thread's packing buffer (the pool's threads call in concurrently), sized for the largest kernel. */
static _Thread_local float *pack;

static int ensure_pack(napi_env env) {
  if (pack) return 1;
  size_t floats = 0;
  for (int i = 0; i < NISA; i++)
    if (supported(i) && ISAS[i].pack_floats() > floats) floats = ISAS[i].pack_floats();
  pack = malloc(floats * sizeof(float));
  if (!pack) napi_throw_error(env, NULL, "longshot_cpu: out of memory for the packing buffers");
  return pack != NULL;
}

/*
 * A typed array's elements; *elem = their size, 0 for a type the kernels do not take (f32, bf16/f16 bits and
 * i32 ranges: Int32Array reports 8 so it cannot pass for f32). data may be NULL when empty.
 */
static void *data_of(napi_env env, napi_value v, size_t *elem) {
  napi_typedarray_type type;
  size_t length;
  void *data = NULL;
  *elem = 0;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok) return NULL;
  *elem = type == napi_float32_array ? 4 : type == napi_uint16_array ? 2 : type == napi_int32_array ? 8 : 0;
  return data;
}

static napi_value gemm(napi_env env, napi_callback_info info) {
  size_t argc = 20;
  napi_value v[20];
  CHECK(napi_get_cb_info(env, info, &argc, v, NULL, NULL));
  if (argc != 20) {
    napi_throw_error(env, NULL, "longshot_cpu: gemm takes 20 arguments");
    return NULL;
  }
  int32_t isa, bType, accumulate;
  int64_t i64[13];
  double alpha;
  CHECK(napi_get_value_int32(env, v[0], &isa));
  const int ints[] = {2, 3, 4, 6, 7, 8, 11, 12, 13, 14, 15, 18};
  for (int i = 0; i < 12; i++) CHECK(napi_get_value_int64(env, v[ints[i]], &i64[i]));
  CHECK(napi_get_value_int32(env, v[9], &bType));
  CHECK(napi_get_value_double(env, v[16], &alpha));
  CHECK(napi_get_value_int32(env, v[19], &accumulate));
  size_t ea, eb, ec, ebias = 4;
  const float *a = data_of(env, v[1], &ea);
  const void *b = data_of(env, v[5], &eb);
  float *c = data_of(env, v[10], &ec);
  napi_valuetype biasType;
  CHECK(napi_typeof(env, v[17], &biasType));
  const float *bias = biasType == napi_null ? NULL : data_of(env, v[17], &ebias);
  if (isa < 0 || isa >= NISA || !supported(isa) || ea != 4 || eb != (bType == LS_F32 ? 4u : 2u) || ec != 4 ||
      ebias != 4) {
    napi_throw_error(env, NULL, "longshot_cpu: gemm got an unsupported kernel or array type");
    return NULL;
  }
  if (!ensure_pack(env)) return NULL;
  const ls_gemm_t g = {a + i64[0], i64[1],          i64[2], (const char *)b + i64[3] * (int64_t)eb,
                       i64[4],     i64[5],          bType,  c + i64[6],
                       i64[7],     i64[8],          i64[9], i64[10],
                       (float)alpha, bias ? bias + i64[11] : NULL, accumulate};
  ISAS[isa].gemm(&g, pack);
  return NULL;
}

static napi_value softmax_rows(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value v[8];
  CHECK(napi_get_cb_info(env, info, &argc, v, NULL, NULL));
  if (argc != 8) {
    napi_throw_error(env, NULL, "longshot_cpu: softmaxRows takes 8 arguments");
    return NULL;
  }
  int32_t isa;
  int64_t off, rows, ld, width;
  CHECK(napi_get_value_int32(env, v[0], &isa));
  CHECK(napi_get_value_int64(env, v[2], &off));
  CHECK(napi_get_value_int64(env, v[3], &rows));
  CHECK(napi_get_value_int64(env, v[4], &ld));
  CHECK(napi_get_value_int64(env, v[5], &width));
  size_t es, el, eh;
  float *s = data_of(env, v[1], &es);
  const int32_t *lo = data_of(env, v[6], &el), *hi = data_of(env, v[7], &eh);
  if (isa < 0 || isa >= NISA || !supported(isa) || es != 4 || el != 8 || eh != 8) {
    napi_throw_error(env, NULL, "longshot_cpu: softmaxRows got an unsupported kernel or array type");
    return NULL;
  }
  ISAS[isa].softmax_rows(s + off, rows, ld, width, lo, hi);
  return NULL;
}

/*
 * The other kernels take their arrays as views (Float32Array, null where optional; offsets are the views')
 * and numbers, after the kernel index: the argument lists of ops.inc's functions.
 */
typedef struct {
  napi_env env;
  napi_value *v;
  size_t argc;
  int ok;
} args_t;

static const float *f32_at(args_t *a, size_t i, int optional) {
  napi_valuetype t;
  if (!a->ok || i >= a->argc || napi_typeof(a->env, a->v[i], &t) != napi_ok) return (a->ok = 0), NULL;
  if (t == napi_null && optional) return NULL;
  size_t e;
  const float *p = data_of(a->env, a->v[i], &e);
  if (e != 4) a->ok = 0;
  return p;
}

static int64_t int_at(args_t *a, size_t i) {
  int64_t x = 0;
  if (!a->ok || i >= a->argc || napi_get_value_int64(a->env, a->v[i], &x) != napi_ok) a->ok = 0;
  return x;
}

static double num_at(args_t *a, size_t i) {
  double x = 0;
  if (!a->ok || i >= a->argc || napi_get_value_double(a->env, a->v[i], &x) != napi_ok) a->ok = 0;
  return x;
}

/* Reads the call's arguments and its kernel (argument 0); NULL (with a JS error thrown) on bad input. */
static const ls_kernels_t *begin(napi_env env, napi_callback_info info, args_t *a, napi_value *v, size_t want,
                          const char *name) {
  a->env = env;
  a->v = v;
  a->argc = want;
  a->ok = napi_get_cb_info(env, info, &a->argc, v, NULL, NULL) == napi_ok && a->argc == want;
  const int64_t isa = int_at(a, 0);
  if (!a->ok || isa < 0 || isa >= NISA || !supported((int)isa)) {
    char msg[128];
    snprintf(msg, sizeof msg, "longshot_cpu: %s takes %zu arguments, the first a kernel this CPU runs", name, want);
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  return &ISAS[isa];
}

static napi_value finish(args_t *a, const char *name) {
  char msg[128];
  snprintf(msg, sizeof msg, "longshot_cpu: %s got an argument of the wrong type", name);
  napi_throw_error(a->env, NULL, msg);
  return NULL;
}

static napi_value boolean(napi_env env, int b) {
  napi_value r;
  napi_get_boolean(env, b, &r);
  return r;
}

/* unary(isa, code, src, dst, n) → false when the kernels do not implement the op. */
static napi_value unary(napi_env env, napi_callback_info info) {
  napi_value v[5];
  args_t a;
  const ls_kernels_t *k = begin(env, info, &a, v, 5, "unary");
  if (!k) return NULL;
  const int code = (int)int_at(&a, 1);
  const float *src = f32_at(&a, 2, 0), *dst = f32_at(&a, 3, 0);
  const int64_t n = int_at(&a, 4);
  if (!a.ok) return finish(&a, "unary");
  return boolean(env, k->unary(code, src, (float *)dst, n));
}

/* binary(isa, code, a, b, dst, dims: Int32Array [shape, aStrides, bStrides], rank) */
static napi_value binary(napi_env env, napi_callback_info info) {
  napi_value v[7];
  args_t a;
  const ls_kernels_t *k = begin(env, info, &a, v, 7, "binary");
  if (!k) return NULL;
  const int code = (int)int_at(&a, 1);
  const float *x = f32_at(&a, 2, 0), *y = f32_at(&a, 3, 0), *dst = f32_at(&a, 4, 0);
  size_t e = 0;
  const int32_t *dims = a.ok ? data_of(env, v[5], &e) : NULL;
  const int64_t rank = int_at(&a, 6);
  if (!a.ok || e != 8 || rank > 8) return finish(&a, "binary");
  k->binary(code, x, y, (float *)dst, rank, dims);
  return NULL;
}

/* rmsNorm(isa, out, x, w|null, gate|null, rows, dim, group, eps, normBeforeGate) */
static napi_value rms_norm(napi_env env, napi_callback_info info) {
  napi_value v[10];
  args_t a;
  const ls_kernels_t *k = begin(env, info, &a, v, 10, "rmsNorm");
  if (!k) return NULL;
  const float *out = f32_at(&a, 1, 0), *x = f32_at(&a, 2, 0), *w = f32_at(&a, 3, 1), *g = f32_at(&a, 4, 1);
  const int64_t rows = int_at(&a, 5), dim = int_at(&a, 6), group = int_at(&a, 7);
  const double eps = num_at(&a, 8);
  const int64_t nbg = int_at(&a, 9);
  if (!a.ok || group <= 0 || dim % group) return finish(&a, "rmsNorm");
  k->rms_norm((float *)out, x, w, g, rows, dim, group, (float)eps, (int)nbg);
  return NULL;
}

/* layerNorm(isa, out, x, w|null, b|null, rows, dim, eps) */
static napi_value layer_norm(napi_env env, napi_callback_info info) {
  napi_value v[8];
  args_t a;
  const ls_kernels_t *k = begin(env, info, &a, v, 8, "layerNorm");
  if (!k) return NULL;
  const float *out = f32_at(&a, 1, 0), *x = f32_at(&a, 2, 0), *w = f32_at(&a, 3, 1), *b = f32_at(&a, 4, 1);
  const int64_t rows = int_at(&a, 5), dim = int_at(&a, 6);
  const double eps = num_at(&a, 7);
  if (!a.ok) return finish(&a, "layerNorm");
  k->layer_norm((float *)out, x, w, b, rows, dim, (float)eps);
  return NULL;
}

/* conv1d(isa, y, x, w, bias|null, state|null, batch, len, channels, width, silu) */
static napi_value conv1d(napi_env env, napi_callback_info info) {
  napi_value v[11];
  args_t a;
  const ls_kernels_t *k = begin(env, info, &a, v, 11, "conv1d");
  if (!k) return NULL;
  const float *y = f32_at(&a, 1, 0), *x = f32_at(&a, 2, 0), *w = f32_at(&a, 3, 0), *b = f32_at(&a, 4, 1),
              *s = f32_at(&a, 5, 1);
  const int64_t batch = int_at(&a, 6), len = int_at(&a, 7), C = int_at(&a, 8), W = int_at(&a, 9),
                act = int_at(&a, 10);
  if (!a.ok || W < 1 || W > 16) return finish(&a, "conv1d");
  k->conv1d((float *)y, x, w, b, s, batch, len, C, W, (int)act);
  return NULL;
}

/* The SSD dims from 7 integer arguments starting at i; 0 (a.ok cleared) when they are not a scan's. */
static int ssd_dims(args_t *a, ls_ssd_t *d, size_t i) {
  d->batch = int_at(a, i);
  d->len = int_at(a, i + 1);
  d->heads = int_at(a, i + 2);
  d->headDim = int_at(a, i + 3);
  d->groups = int_at(a, i + 4);
  d->dState = int_at(a, i + 5);
  d->chunkSize = int_at(a, i + 6);
  if (d->groups <= 0 || d->heads % d->groups || d->chunkSize <= 0) a->ok = 0;
  return a->ok;
}

/* A scan kernel's scratch (free it after the call), with the packing buffer ready; NULL (a JS error thrown) when
 * memory runs out. */
static float *scan_scratch(napi_env env, size_t floats) {
  if (!ensure_pack(env)) return NULL;
  float *scratch = malloc(floats * sizeof(float));
  if (!scratch) napi_throw_error(env, NULL, "longshot_cpu: out of memory for the SSD scan's buffers");
  return scratch;
}

/* ssd(isa, x, dt, A, B, C, D|null, s0|null, y, sOut|null, batch, len, heads, headDim, groups, dState, chunk, lo, hi) */
static napi_value ssd(napi_env env, napi_callback_info info) {
  napi_value v[19];
  args_t a;
  const ls_kernels_t *k = begin(env, info, &a, v, 19, "ssd");
  if (!k) return NULL;
  ls_ssd_t d = {f32_at(&a, 1, 0), f32_at(&a, 2, 0), f32_at(&a, 3, 0), f32_at(&a, 4, 0), f32_at(&a, 5, 0),
                f32_at(&a, 6, 1), f32_at(&a, 7, 1), (float *)f32_at(&a, 8, 0), (float *)f32_at(&a, 9, 1)};
  const int64_t lo = int_at(&a, 17), hi = int_at(&a, 18);
  if (!ssd_dims(&a, &d, 10)) return finish(&a, "ssd");
  float *scratch = scan_scratch(env, k->ssd_scratch_floats(&d));
  if (scratch) k->ssd(&d, lo, hi, scratch, pack);
  free(scratch);
  return NULL;
}

/*
 * ssdGrad(isa, x, dt, A, B, C, D|null, s0|null, dy, dStateOut|null, dx, ddt, dB, dC, dA, dD, dState|null, batch,
 * len, heads, headDim, groups, dState, chunk, lo, hi)
 */
static napi_value ssd_grad(napi_env env, napi_callback_info info) {
  napi_value v[26];
  args_t a;
  const ls_kernels_t *k = begin(env, info, &a, v, 26, "ssdGrad");
  if (!k) return NULL;
  ls_ssd_grad_t g = {{f32_at(&a, 1, 0), f32_at(&a, 2, 0), f32_at(&a, 3, 0), f32_at(&a, 4, 0), f32_at(&a, 5, 0),
                      f32_at(&a, 6, 1), f32_at(&a, 7, 1), NULL, NULL},
                     f32_at(&a, 8, 0),
                     f32_at(&a, 9, 1)};
  float **outs[] = {&g.dx, &g.ddt, &g.dB, &g.dC, &g.dA, &g.dD, &g.dState};
  for (size_t i = 0; i < 7; i++) *outs[i] = (float *)f32_at(&a, 10 + i, i == 6);
  const int64_t lo = int_at(&a, 24), hi = int_at(&a, 25);
  if (!ssd_dims(&a, &g.s, 17)) return finish(&a, "ssdGrad");
  float *scratch = scan_scratch(env, k->ssd_grad_scratch_floats(&g));
  if (scratch) k->ssd_grad(&g, lo, hi, scratch, pack);
  free(scratch);
  return NULL;
}

/*
 * conv1dGrad(isa, x, w, bias|null, state|null, dy, dStateOut|null, dx, dState|null, dw, db, batch, len, channels,
 * width, silu, lo, hi)
 */
static napi_value conv1d_grad(napi_env env, napi_callback_info info) {
  napi_value v[18];
  args_t a;
  const ls_kernels_t *k = begin(env, info, &a, v, 18, "conv1dGrad");
  if (!k) return NULL;
  const ls_conv_grad_t g = {f32_at(&a, 1, 0),          f32_at(&a, 2, 0),          f32_at(&a, 3, 1),
                            f32_at(&a, 4, 1),          f32_at(&a, 5, 0),          f32_at(&a, 6, 1),
                            (float *)f32_at(&a, 7, 0), (float *)f32_at(&a, 8, 1), (float *)f32_at(&a, 9, 0),
                            (float *)f32_at(&a, 10, 0), int_at(&a, 11),           int_at(&a, 12),
                            int_at(&a, 13),            int_at(&a, 14),            (int)int_at(&a, 15)};
  const int64_t lo = int_at(&a, 16), hi = int_at(&a, 17);
  if (!a.ok || g.W < 1 || g.W > 16) return finish(&a, "conv1dGrad");
  k->conv1d_grad(&g, lo, hi);
  return NULL;
}

static napi_value isas(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value list, name;
  CHECK(napi_create_array(env, &list));
  uint32_t n = 0;
  for (int i = 0; i < NISA; i++)
    if (supported(i)) {
      CHECK(napi_create_string_utf8(env, ISAS[i].name, NAPI_AUTO_LENGTH, &name));
      CHECK(napi_set_element(env, list, n++, name));
    }
  return list;
}

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback fn;
  } FNS[] = {{"gemm", gemm},       {"softmaxRows", softmax_rows}, {"unary", unary}, {"binary", binary},
             {"rmsNorm", rms_norm}, {"layerNorm", layer_norm},     {"conv1d", conv1d}, {"ssd", ssd},
             {"ssdGrad", ssd_grad}, {"conv1dGrad", conv1d_grad}, {"isas", isas}};
  for (size_t i = 0; i < sizeof FNS / sizeof FNS[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, FNS[i].name, NAPI_AUTO_LENGTH, FNS[i].fn, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, FNS[i].name, fn) != napi_ok)
      return NULL;
  }
  return exports;
}
