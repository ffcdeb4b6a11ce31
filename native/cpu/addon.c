/*
 * The native CPU addon (Node-API): gemm(isa, a, aOff, aRow, aCol, b, bOff, bRow, bCol, bType, c, cOff, ldc, m, n,
 * k, alpha, bias, biasOff, accumulate) over typed arrays (shared or not; offsets in elements), computed on the
 * calling thread, and softmaxRows(isa, s, sOff, rows, ld, width, lo, hi) (ls_softmax_rows_* in kernel.inc; lo and
 * hi are Int32Arrays). The worker pool calls them from every thread. isas() lists the kernels this CPU can run, best
 * last: "base" (16-byte vectors) everywhere, then "avx2" and "avx512" where CPUID reports them.
 */
#include <node_api.h>
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

typedef struct {
  const char *name;
  size_t (*pack_floats)(void);
  void (*gemm)(const ls_gemm_t *, float *);
  void (*softmax_rows)(float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, const int32_t *, const int32_t *);
} isa_t;

#if defined(__x86_64__) || defined(_M_X64)
#define X86 1
static const isa_t ISAS[] = {{"base", ls_pack_floats_base, ls_gemm_base, ls_softmax_rows_base},
                             {"avx2", ls_pack_floats_avx2, ls_gemm_avx2, ls_softmax_rows_avx2},
                             {"avx512", ls_pack_floats_avx512, ls_gemm_avx512, ls_softmax_rows_avx512}};
#else
#define X86 0
static const isa_t ISAS[] = {{"base", ls_pack_floats_base, ls_gemm_base, ls_softmax_rows_base}};
#endif
enum { NISA = sizeof ISAS / sizeof ISAS[0] };

static int supported(int isa) {
#if X86
  __builtin_cpu_init();
  if (isa == 1) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == 2) return __builtin_cpu_supports("avx512f");
#endif
  return isa == 0;
}

/* Each thread's packing buffer (the pool's threads call in concurrently), sized for the largest kernel. */
static _Thread_local float *pack;

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
  if (!pack) {
    size_t floats = 0;
    for (int i = 0; i < NISA; i++)
      if (ISAS[i].pack_floats() > floats) floats = ISAS[i].pack_floats();
    pack = malloc(floats * sizeof(float));
    if (!pack) {
      napi_throw_error(env, NULL, "longshot_cpu: out of memory for the packing buffers");
      return NULL;
    }
  }
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
  napi_value fn;
  if (napi_create_function(env, "gemm", NAPI_AUTO_LENGTH, gemm, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "gemm", fn) != napi_ok ||
      napi_create_function(env, "softmaxRows", NAPI_AUTO_LENGTH, softmax_rows, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "softmaxRows", fn) != napi_ok ||
      napi_create_function(env, "isas", NAPI_AUTO_LENGTH, isas, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "isas", fn) != napi_ok)
    return NULL;
  return exports;
}
