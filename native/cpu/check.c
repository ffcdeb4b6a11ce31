/*
 * A stand-alone check of the C kernels against plain scalar references (double precision, libm), on odd sizes:
 * GEMM (strided/transposed operands, bias, alpha, accumulate, bf16/f16 B, the small-m path), softmax rows, the
 * unary and binary ops, RMSNorm (gated both ways, grouped), LayerNorm, the causal conv1d and the SSD scan (against
 * the token-by-token recurrence), and the backwards of those two (directional derivatives of double recurrences). scripts/check-arm64.sh builds it for aarch64 and runs it under qemu; built for
 * the host it checks the host's kernels. Usage: check <kernel>... (base, avx2, avx512, neon); exit 1 on a mismatch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

static const ls_kernels_t ALL[] = {
    LS_KERNELS(base),
#if defined(__x86_64__)
    LS_KERNELS(avx2),   LS_KERNELS(avx512),
#endif
#if defined(__aarch64__)
    LS_KERNELS(neon),
#endif
};

static uint32_t seed = 12345;
static float rnd(float lo, float hi) {
  seed = seed * 1664525u + 1013904223u;
  return lo + (hi - lo) * (float)(seed >> 8) / 16777216.0f;
}
static float *randv(size_t n, float lo, float hi) {
  float *v = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) v[i] = rnd(lo, hi);
  return v;
}

static int failures = 0;
/* max |got − want| / max(scale, max |want|) ≤ tol */
static void expect(const char *k, const char *what, const float *got, const double *want, size_t n, double tol,
                   double floor) {
  double scale = floor, err = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
  for (size_t i = 0; i < n; i++) {
    const double e = fabs(got[i] - want[i]);
    if (!(e <= err)) err = e, at = i; /* NaN counts */
  }
  if (!(err / scale <= tol)) {
    printf("FAIL %s %s: error %.3g of scale %.3g at [%zu]: %g vs %g\n", k, what, err, scale, at, got[at], want[at]);
    failures++;
  }
}

static uint16_t to_bf16(float f) {
  union { float f; uint32_t u; } x = {f};
  return (uint16_t)((x.u + 0x7fff + ((x.u >> 16) & 1)) >> 16);
}

static void check_gemm(const ls_kernels_t *K, float *pack) {
  const int sizes[][3] = {{1, 7, 5}, {3, 33, 17}, {5, 9, 400}, {13, 37, 29}, {67, 101, 71}, {203, 45, 391}};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (int variant = 0; variant < 4; variant++) {
      const ptrdiff_t m = sizes[s][0], n = sizes[s][1], k = sizes[s][2];
      const int transB = variant & 1, half = variant == 3, acc = variant == 2;
      float *a = randv(m * k, -1, 1), *b = randv(k * n, -1, 1), *bias = randv(n, -1, 1), *c = randv(m * n, -1, 1);
      uint16_t *bh = malloc(k * n * sizeof(uint16_t));
      for (ptrdiff_t i = 0; i < k * n; i++) bh[i] = to_bf16(b[i]), b[i] = half ? bf16_to_f32(bh[i]) : b[i];
      double *want = malloc(m * n * sizeof(double));
      const ptrdiff_t bRow = transB ? 1 : n, bCol = transB ? k : 1;
      for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++) {
          double t = 0;
          for (ptrdiff_t p = 0; p < k; p++) t += (double)a[i * k + p] * b[p * bRow + j * bCol];
          want[i * n + j] = 0.5 * t + (acc ? c[i * n + j] : bias[j]);
        }
      const ls_gemm_t g = {a, k, 1, half ? (const void *)bh : b, bRow, bCol, half ? LS_BF16 : LS_F32, c, n, m, n, k,
                           0.5f, acc ? NULL : bias, acc};
      K->gemm(&g, pack);
      char what[64];
      snprintf(what, sizeof what, "gemm %tdx%tdx%td variant %d", m, n, k, variant);
      expect(K->name, what, c, want, m * n, 1e-5 * sqrt((double)k), 1);
      free(a), free(b), free(bias), free(c), free(bh), free(want);
    }
}

static void check_softmax(const ls_kernels_t *K) {
  const ptrdiff_t rows = 5, width = 37, ld = 41;
  float *s = randv(rows * ld, -8, 8);
  int32_t lo[5] = {0, 3, 0, 10, 20}, hi[5] = {37, 30, 1, 10, 37};
  double want[5 * 41] = {0};
  for (ptrdiff_t r = 0; r < rows; r++) {
    double mx = -INFINITY, sum = 0;
    for (int j = lo[r]; j < hi[r]; j++) mx = s[r * ld + j] > mx ? s[r * ld + j] : mx;
    for (int j = lo[r]; j < hi[r]; j++) sum += exp(s[r * ld + j] - mx);
    for (int j = 0; j < width; j++) want[r * ld + j] = j >= lo[r] && j < hi[r] ? exp(s[r * ld + j] - mx) / sum : 0;
    for (int j = width; j < ld; j++) want[r * ld + j] = s[r * ld + j];
  }
  K->softmax_rows(s, rows, ld, width, lo, hi);
  expect(K->name, "softmax rows", s, want, rows * ld, 2e-6, 1);
  free(s);
}

static double sig(double v) { return 1 / (1 + exp(-v)); }

static void check_elementwise(const ls_kernels_t *K) {
  const ptrdiff_t n = 203;
  for (int code = 0; code <= 14; code++) {
    const int positive = code == 2 || code == 3 || code == 4;
    float *x = randv(n, positive ? 0.01f : -12, positive ? 30 : 25), *y = randv(n, 0, 0);
    double want[203];
    for (ptrdiff_t i = 0; i < n; i++) {
      const double v = x[i];
      const double r[] = {-v,
                          exp(v),
                          log(v),
                          sqrt(v),
                          1 / sqrt(v),
                          fabs(v),
                          sig(v),
                          tanh(v),
                          v > 0 ? v : 0,
                          v > 0 ? v * v : 0,
                          v * sig(v),
                          0.5 * v * (1 + erf(v / sqrt(2.0))),
                          0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))),
                          v * sig(1.702 * v),
                          v > 20 ? v : log1p(exp(v))};
      want[i] = r[code];
    }
    const int done = K->unary(code, x, y, n);
    char what[32];
    snprintf(what, sizeof what, "unary %d", code);
    if (code == 2) {
      if (done) printf("FAIL %s unary log: claimed, the kernels leave it to the reference\n", K->name), failures++;
    } else
      for (ptrdiff_t i = 0; i < n; i++) /* per element, relative to max(|want|, 0.1) */
        expect(K->name, what, y + i, want + i, 1, 2e-6, 0.1);
    free(x), free(y);
  }
  /* [3, 5, 19] op [5, 1] (broadcast) and the contiguous case */
  const int32_t dims[] = {3, 5, 19, 95, 19, 1, 0, 1, 0};
  float *a = randv(3 * 5 * 19, -3, 3), *b = randv(5, 0.5f, 2), *o = randv(3 * 5 * 19, 0, 0);
  for (int code = 0; code <= 6; code++) {
    double want[285];
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 5; j++)
        for (int q = 0; q < 19; q++) {
          const double x = a[i * 95 + j * 19 + q], yv = b[j];
          const double r[] = {x + yv, x - yv, x * yv, x / yv, x > yv ? x : yv, x < yv ? x : yv, x * sig(x) * yv};
          want[i * 95 + j * 19 + q] = r[code];
        }
    K->binary(code, a, b, o, 3, dims);
    char what[32];
    snprintf(what, sizeof what, "binary %d", code);
    expect(K->name, what, o, want, 285, 2e-6, 1);
  }
  free(a), free(b), free(o);
}

static void check_norms(const ls_kernels_t *K) {
  const ptrdiff_t rows = 3, group = 37, dim = 2 * group;
  float *x = randv(rows * dim, -3, 3), *g = randv(rows * dim, -4, 4), *w = randv(dim, 0.5f, 1.5f),
        *bb = randv(dim, -1, 1), *o = randv(rows * dim, 0, 0);
  double want[3 * 74];
  for (int mode = 0; mode < 3; mode++) { /* plain grouped, gated first, gated after the norm */
    for (ptrdiff_t base = 0; base < rows * dim; base += group) {
      double v[37], ss = 0;
      for (int i = 0; i < group; i++) {
        v[i] = x[base + i] * (mode == 1 ? g[base + i] * sig(g[base + i]) : 1);
        ss += v[i] * v[i];
      }
      const double inv = 1 / sqrt(ss / group + 1e-5);
      for (int i = 0; i < group; i++)
        want[base + i] = v[i] * inv * w[base % dim + i] * (mode == 2 ? g[base + i] * sig(g[base + i]) : 1);
    }
    K->rms_norm(o, x, w, mode ? g : NULL, rows, dim, group, 1e-5f, mode == 2);
    expect(K->name, mode == 0 ? "rms norm" : mode == 1 ? "gated rms norm" : "rms norm before gate", o, want,
           rows * dim, 2e-6, 1);
  }
  for (ptrdiff_t r = 0; r < rows; r++) {
    double mean = 0, var = 0;
    for (int i = 0; i < dim; i++) mean += x[r * dim + i] / dim;
    for (int i = 0; i < dim; i++) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean) / dim;
    for (int i = 0; i < dim; i++) want[r * dim + i] = (x[r * dim + i] - mean) / sqrt(var + 1e-5) * w[i] + bb[i];
  }
  K->layer_norm(o, x, w, bb, rows, dim, 1e-5f);
  expect(K->name, "layer norm", o, want, rows * dim, 2e-6, 1);
  free(x), free(g), free(w), free(bb), free(o);
}

static void check_conv1d(const ls_kernels_t *K) {
  const ptrdiff_t batch = 2, len = 11, C = 23, W = 4;
  float *x = randv(batch * len * C, -2, 2), *w = randv(C * W, -1, 1), *bias = randv(C, -1, 1),
        *st = randv(batch * (W - 1) * C, -1, 1), *y = randv(batch * len * C, 0, 0);
  double want[2 * 11 * 23];
  for (ptrdiff_t b = 0; b < batch; b++)
    for (ptrdiff_t t = 0; t < len; t++)
      for (ptrdiff_t c = 0; c < C; c++) {
        double acc = bias[c];
        for (ptrdiff_t j = 0; j < W; j++) {
          const ptrdiff_t r = t + j - (W - 1); /* input row; < 0 reads the state */
          acc += w[c * W + j] * (r < 0 ? st[(b * (W - 1) + W - 1 + r) * C + c] : x[(b * len + r) * C + c]);
        }
        want[(b * len + t) * C + c] = acc * sig(acc);
      }
  K->conv1d(y, x, w, bias, st, batch, len, C, W, 1);
  expect(K->name, "conv1d", y, want, batch * len * C, 2e-6, 1);
  free(x), free(w), free(bias), free(st), free(y);
}

/* The scan's sizes in both SSD checks: chunks of 16 over 45 tokens (the last one short), 4 heads in 2 groups. */
enum { SB = 2, SL = 45, SH = 4, SP = 7, SG = 2, SN = 5, SCHUNK = 16 };
enum { NX = SB * SL * SH * SP, NDT = SB * SL * SH, NBC = SB * SL * SG * SN, NS = SB * SH * SP * SN };

/* The recurrence s_t = exp(dt·A)·s + dt·x ⊗ B, y = s·C + D·x, one token at a time, in double: y [NX], s [NS]. */
static void ssd_recurrence(const double *x, const double *dt, const double *A, const double *B, const double *C,
                           const double *D, const double *s0, double *y, double *s) {
  for (ptrdiff_t b = 0; b < SB; b++)
    for (ptrdiff_t h = 0; h < SH; h++) {
      const ptrdiff_t g = h / (SH / SG);
      double *st = s + (b * SH + h) * SP * SN;
      for (int i = 0; i < SP * SN; i++) st[i] = s0[(b * SH + h) * SP * SN + i];
      for (ptrdiff_t t = 0; t < SL; t++) {
        const double d = dt[(b * SL + t) * SH + h], decay = exp(d * A[h]);
        const double *bt = B + ((b * SL + t) * SG + g) * SN, *ct = C + ((b * SL + t) * SG + g) * SN;
        for (ptrdiff_t p = 0; p < SP; p++) {
          const double xv = x[((b * SL + t) * SH + h) * SP + p];
          double acc = 0;
          for (ptrdiff_t q = 0; q < SN; q++) {
            st[p * SN + q] = st[p * SN + q] * decay + d * xv * bt[q];
            acc += st[p * SN + q] * ct[q];
          }
          y[((b * SL + t) * SH + h) * SP + p] = acc + D[h] * xv;
        }
      }
    }
}

/* The scan's inputs (x, dt, A, B, C, D, s0) as floats, and their sizes. */
static const size_t SSD_SIZES[7] = {NX, NDT, SH, NBC, NBC, SH, NS};
static float **ssd_inputs(void) {
  static const float lo[7] = {-1, 0.01f, -2, -1, -1, -1, -1}, hi[7] = {1, 0.3f, -0.1f, 1, 1, 1, 1};
  float **in = malloc(7 * sizeof(float *));
  for (int i = 0; i < 7; i++) in[i] = randv(SSD_SIZES[i], lo[i], hi[i]);
  return in;
}
static double *to_double(const float *v, size_t n) {
  double *out = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) out[i] = v[i];
  return out;
}

/* The SSD scan against the recurrence. */
static void check_ssd(const ls_kernels_t *K, float *pack) {
  float **in = ssd_inputs();
  double *din[7];
  for (int i = 0; i < 7; i++) din[i] = to_double(in[i], SSD_SIZES[i]);
  double *want = malloc((NX + NS) * sizeof(double));
  ssd_recurrence(din[0], din[1], din[2], din[3], din[4], din[5], din[6], want, want + NX);
  float *y = randv(NX, 0, 0), *sOut = randv(NS, 0, 0);
  const ls_ssd_t d = {in[0], in[1], in[2], in[3], in[4], in[5], in[6], y, sOut, SB, SL, SH, SP, SG, SN, SCHUNK};
  float *scratch = malloc(K->ssd_scratch_floats(&d) * sizeof(float));
  K->ssd(&d, 0, 3, scratch, pack); /* two calls, as two threads split the (batch, head) pairs */
  K->ssd(&d, 3, SB * SH, scratch, pack);
  expect(K->name, "ssd y", y, want, NX, 1e-5, 1);
  expect(K->name, "ssd state", sOut, want + NX, NS, 1e-5, 1);
  for (int i = 0; i < 7; i++) free(in[i]), free(din[i]);
  free(in), free(y), free(sOut), free(want), free(scratch);
}

/*
 * The SSD scan's backward: for L = ⟨wy, y⟩ + ⟨ws, s_end⟩ and a random direction v of each input, ⟨gradient, v⟩
 * against the recurrence's central difference (L(in + εv) − L(in − εv)) / 2ε, within 1e-4·‖gradient‖.
 */
static void check_ssd_grad(const ls_kernels_t *K, float *pack) {
  float **in = ssd_inputs();
  float *wy = randv(NX, -1, 1), *ws = randv(NS, -1, 1);
  float *grad[7];
  for (int i = 0; i < 7; i++) grad[i] = randv(i == 2 || i == 5 ? SB * SH : SSD_SIZES[i], 0, 0);
  const ls_ssd_grad_t g = {{in[0], in[1], in[2], in[3], in[4], in[5], in[6], NULL, NULL, SB, SL, SH, SP, SG, SN, SCHUNK},
                           wy, ws, grad[0], grad[1], grad[3], grad[4], grad[2], grad[5], grad[6]};
  float *scratch = malloc(K->ssd_grad_scratch_floats(&g) * sizeof(float));
  K->ssd_grad(&g, 0, 1, scratch, pack); /* two calls, as two threads split the (batch, group) pairs */
  K->ssd_grad(&g, 1, SB * SG, scratch, pack);
  /* dA and dD come per (batch, head): sum them over the batch */
  for (int i = 2; i <= 5; i += 3)
    for (ptrdiff_t h = 0; h < SH; h++) grad[i][h] += grad[i][SH + h];
  double *y = malloc(NX * sizeof(double)), *s = malloc(NS * sizeof(double));
  const char *names[7] = {"dx", "ddt", "dA", "dB", "dC", "dD", "dState"};
  for (int k = 0; k < 7; k++) {
    double *din[7];
    for (int i = 0; i < 7; i++) din[i] = to_double(in[i], SSD_SIZES[i]);
    const size_t n = SSD_SIZES[k];
    const float *v = randv(n, -1, 1);
    double loss[2], got = 0, norm = 0;
    for (int side = 0; side < 2; side++) {
      const double eps = side ? -1e-5 : 1e-5;
      for (size_t i = 0; i < n; i++) din[k][i] = in[k][i] + eps * v[i];
      ssd_recurrence(din[0], din[1], din[2], din[3], din[4], din[5], din[6], y, s);
      loss[side] = 0;
      for (size_t i = 0; i < NX; i++) loss[side] += wy[i] * y[i];
      for (size_t i = 0; i < NS; i++) loss[side] += ws[i] * s[i];
    }
    for (size_t i = 0; i < n; i++) got += (double)grad[k][i] * v[i], norm += (double)grad[k][i] * grad[k][i];
    const double fd = (loss[0] - loss[1]) / 2e-5, tol = 1e-4 * sqrt(norm) + 1e-6;
    if (fabs(got - fd) > tol) {
      printf("FAIL %s ssd_grad %s: <g, v> %g, central difference %g\n", K->name, names[k], got, fd);
      failures++;
    }
    for (int i = 0; i < 7; i++) free(din[i]);
    free((void *)v);
  }
  for (int i = 0; i < 7; i++) free(in[i]), free(grad[i]);
  free(in), free(wy), free(ws), free(y), free(s), free(scratch);
}

/* conv1d with SiLU in double over [state; x] (batch 2, C 23, W 4): y [2, len, 23] and the state out [2, 3, 23]. */
static void conv_recurrence(const double *x, const double *w, const double *bias, const double *st, ptrdiff_t len,
                            double *y, double *sOut) {
  const ptrdiff_t C = 23, W = 4, past = 3;
  for (ptrdiff_t b = 0; b < 2; b++) {
    /* Row q of [state; x]. */
#define IN(q, c) ((q) < past ? st[(b * past + (q)) * C + (c)] : x[(b * len + (q) - past) * C + (c)])
    for (ptrdiff_t t = 0; t < len; t++)
      for (ptrdiff_t c = 0; c < C; c++) {
        double acc = bias[c];
        for (ptrdiff_t j = 0; j < W; j++) acc += w[c * W + j] * IN(t + j, c);
        y[(b * len + t) * C + c] = acc / (1 + exp(-acc));
      }
    for (ptrdiff_t r = 0; r < past; r++)
      for (ptrdiff_t c = 0; c < C; c++) sOut[(b * past + r) * C + c] = IN(len + r, c);
#undef IN
  }
}

/*
 * The causal conv1d's backward (SiLU, a state in and out; 23 channels leave a partial vector; len 2 is shorter
 * than the kernel): directional derivatives of conv_recurrence, as check_ssd_grad does.
 */
static void check_conv1d_grad(const ls_kernels_t *K) {
  for (ptrdiff_t len = 2; len <= 11; len += 9) {
    const ptrdiff_t C = 23, W = 4, past = 3, ny = 2 * len * C, ns = 2 * past * C;
    const size_t sizes[4] = {ny, C * W, C, ns};
    float *in[4] = {randv(ny, -2, 2), randv(C * W, -1, 1), randv(C, -1, 1), randv(ns, -1, 1)};
    float *wy = randv(ny, -1, 1), *ws = randv(ns, -1, 1);
    float *grad[4] = {randv(ny, 0, 0), randv(2 * C * W, 0, 0), randv(2 * C, 0, 0), randv(ns, 0, 0)};
    const ls_conv_grad_t g = {in[0], in[1], in[2], in[3], wy, ws, grad[0], grad[3], grad[1], grad[2], 2, len, C, W, 1};
    K->conv1d_grad(&g, 0, 1); /* two calls, as two threads split the batch */
    K->conv1d_grad(&g, 1, 2);
    for (int i = 1; i <= 2; i++) /* dw, db come per batch row */
      for (size_t k = 0; k < sizes[i]; k++) grad[i][k] += grad[i][sizes[i] + k];
    double *y = malloc(ny * sizeof(double)), *so = malloc(ns * sizeof(double));
    const char *names[4] = {"dx", "dw", "dbias", "dState"};
    for (int k = 0; k < 4; k++) {
      double *din[4];
      for (int i = 0; i < 4; i++) din[i] = to_double(in[i], sizes[i]);
      float *v = randv(sizes[k], -1, 1);
      double loss[2], got = 0, norm = 0;
      for (int side = 0; side < 2; side++) {
        for (size_t i = 0; i < sizes[k]; i++) din[k][i] = in[k][i] + (side ? -1e-5 : 1e-5) * v[i];
        conv_recurrence(din[0], din[1], din[2], din[3], len, y, so);
        loss[side] = 0;
        for (ptrdiff_t i = 0; i < ny; i++) loss[side] += wy[i] * y[i];
        for (ptrdiff_t i = 0; i < ns; i++) loss[side] += ws[i] * so[i];
      }
      for (size_t i = 0; i < sizes[k]; i++) got += (double)grad[k][i] * v[i], norm += (double)grad[k][i] * grad[k][i];
      const double fd = (loss[0] - loss[1]) / 2e-5;
      if (fabs(got - fd) > 1e-4 * sqrt(norm) + 1e-6) {
        printf("FAIL %s conv1d_grad len %td %s: <g, v> %g, central difference %g\n", K->name, len, names[k], got, fd);
        failures++;
      }
      for (int i = 0; i < 4; i++) free(din[i]);
      free(v);
    }
    for (int i = 0; i < 4; i++) free(in[i]), free(grad[i]);
    free(wy), free(ws), free(y), free(so);
  }
}

int main(int argc, char **argv) {
  int ran = 0;
  for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++) {
    int wanted = argc < 2;
    for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], ALL[i].name) == 0;
    if (!wanted) continue;
    const ls_kernels_t *K = &ALL[i];
    float *pack = malloc(K->pack_floats() * sizeof(float));
    const int before = failures;
    check_gemm(K, pack);
    check_softmax(K);
    check_elementwise(K);
    check_norms(K);
    check_conv1d(K);
    check_ssd(K, pack);
    check_ssd_grad(K, pack);
    check_conv1d_grad(K);
    printf("%s %s\n", failures == before ? "ok" : "FAILED", K->name);
    free(pack);
    ran++;
  }
  if (!ran) printf("FAIL: no kernel named %s here\n", argc > 1 ? argv[1] : "?"), failures++;
  return failures ? 1 : 0;
}
