/** Float64 forwards in plain JS, written from the ops' definitions (runtime/backend.ts), for gradient checks. */
type V = ArrayLike<number>;
type S = readonly number[];

const numel = (s: S) => s.reduce((a, b) => a * b, 1);
const stridesOf = (s: S) => {
  const st = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
};
const unravel = (i: number, s: S) => {
  const idx = new Array<number>(s.length);
  for (let d = s.length - 1; d >= 0; d--) {
    idx[d] = i % s[d];
    i = Math.floor(i / s[d]);
  }
  return idx;
};

export const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
export const silu = (v: number) => v * sigmoid(v);

/** erf by its Maclaurin series (|x| ≤ 3 gives ~1e-13, enough for differences at h = 1e-6). */
export function erf(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 80; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

export const UNARY: Record<string, (v: number) => number> = {
  neg: (v) => -v,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (v) => 1 / Math.sqrt(v),
  abs: Math.abs,
  sigmoid,
  tanh: Math.tanh,
  relu: (v) => Math.max(v, 0),
  relu2: (v) => Math.max(v, 0) ** 2,
  silu,
  gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
  gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
  quick_gelu: (v) => v * sigmoid(1.702 * v),
  softplus: (v) => (v > 20 ? v : Math.log1p(Math.exp(v))),
};

export const BINARY: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: Math.max,
  min: Math.min,
  silu_mul: (a, b) => silu(a) * b,
};

export function broadcast(op: (a: number, b: number) => number, a: V, as: S, b: V, bs: S): Float64Array {
  const r = Math.max(as.length, bs.length);
  const pad = (s: S) => [...new Array(r - s.length).fill(1), ...s];
  const [pa, pb] = [pad(as), pad(bs)];
  const os = pa.map((d, i) => Math.max(d, pb[i]));
  const [sa, sb] = [stridesOf(pa), stridesOf(pb)];
  const out = new Float64Array(numel(os));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, os);
    let ia = 0;
    let ib = 0;
    idx.forEach((v, d) => {
      ia += (pa[d] === 1 ? 0 : v) * sa[d];
      ib += (pb[d] === 1 ? 0 : v) * sb[d];
    });
    out[i] = op(a[ia], b[ib]);
  }
  return out;
}

/** Batched matmul as ops.matmul defines it (b shared when rank 2). */
export function matmul(
  a: V,
  as: S,
  b: V,
  bs: S,
  o: { transA?: boolean; transB?: boolean; alpha?: number; bias?: V | null } = {},
): Float64Array {
  const m = as[as.length - (o.transA ? 1 : 2)];
  const k = as[as.length - (o.transA ? 2 : 1)];
  const n = bs[bs.length - (o.transB ? 2 : 1)];
  const batch = numel(as.slice(0, -2));
  const shared = bs.length === 2;
  const out = new Float64Array(batch * m * n);
  for (let z = 0; z < batch; z++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let l = 0; l < k; l++) {
          const av = a[z * m * k + (o.transA ? l * m + i : i * k + l)];
          const bv = b[(shared ? 0 : z * k * n) + (o.transB ? j * k + l : l * n + j)];
          s += av * bv;
        }
        out[(z * m + i) * n + j] = (o.alpha ?? 1) * s + (o.bias ? o.bias[j] : 0);
      }
  return out;
}

export function permute(x: V, s: S, perm: S): Float64Array {
  const os = perm.map((p) => s[p]);
  const st = stridesOf(s);
  const out = new Float64Array(x.length);
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, os);
    out[i] = x[idx.reduce((acc, v, d) => acc + v * st[perm[d]], 0)];
  }
  return out;
}

/** x viewed as [outer, dim, inner]: the rows [start, end) of the middle axis. */
export function slice(x: V, s: S, axis: number, start: number, end: number): Float64Array {
  const outer = numel(s.slice(0, axis));
  const inner = numel(s.slice(axis + 1));
  const dim = s[axis];
  const out = new Float64Array(outer * (end - start) * inner);
  let o = 0;
  for (let a = 0; a < outer; a++)
    for (let d = start; d < end; d++) for (let c = 0; c < inner; c++) out[o++] = x[(a * dim + d) * inner + c];
  return out;
}

export function concat(xs: { v: V; s: S }[], axis: number): Float64Array {
  const outer = numel(xs[0].s.slice(0, axis));
  const parts: number[] = [];
  for (let a = 0; a < outer; a++)
    for (const { v, s } of xs) {
      const row = s[axis] * numel(s.slice(axis + 1));
      for (let i = 0; i < row; i++) parts.push(v[a * row + i]);
    }
  return Float64Array.from(parts);
}

export function flip(x: V, s: S, axis: number): Float64Array {
  const outer = numel(s.slice(0, axis));
  const inner = numel(s.slice(axis + 1));
  const dim = s[axis];
  const out = new Float64Array(x.length);
  for (let a = 0; a < outer; a++)
    for (let d = 0; d < dim; d++)
      for (let c = 0; c < inner; c++) out[(a * dim + d) * inner + c] = x[(a * dim + dim - 1 - d) * inner + c];
  return out;
}

export function reduce(op: 'sum' | 'mean' | 'max', x: V, s: S, axis: number): Float64Array {
  const outer = numel(s.slice(0, axis));
  const inner = numel(s.slice(axis + 1));
  const dim = s[axis];
  const out = new Float64Array(outer * inner);
  for (let a = 0; a < outer; a++)
    for (let c = 0; c < inner; c++) {
      let acc = op === 'max' ? Number.NEGATIVE_INFINITY : 0;
      for (let d = 0; d < dim; d++) {
        const v = x[(a * dim + d) * inner + c];
        acc = op === 'max' ? Math.max(acc, v) : acc + v;
      }
      out[a * inner + c] = op === 'mean' ? acc / dim : acc;
    }
  return out;
}

/** Softmax over rows of `dim` (−∞ rows give zeros). */
export function softmax(x: V, dim: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let m = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < dim; i++) m = Math.max(m, x[r * dim + i]);
    if (m === Number.NEGATIVE_INFINITY) continue;
    let z = 0;
    for (let i = 0; i < dim; i++) z += Math.exp(x[r * dim + i] - m);
    for (let i = 0; i < dim; i++) out[r * dim + i] = Math.exp(x[r * dim + i] - m) / z;
  }
  return out;
}

export function embedding(table: V, dim: number, ids: readonly number[]): Float64Array {
  const out = new Float64Array(ids.length * dim);
  ids.forEach((id, i) => {
    for (let j = 0; j < dim; j++) out[i * dim + j] = table[id * dim + j];
  });
  return out;
}

export function rmsNorm(
  x: V,
  dim: number,
  w: V | null,
  o: { eps: number; gate?: V | null; groupSize?: number; normBeforeGate?: boolean },
): Float64Array {
  const gs = o.groupSize ?? dim;
  const out = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += gs) {
    const h = Array.from({ length: gs }, (_, i) =>
      o.gate && !o.normBeforeGate ? x[base + i] * silu(o.gate[base + i]) : x[base + i],
    );
    const inv = 1 / Math.sqrt(h.reduce((a, v) => a + v * v, 0) / gs + o.eps);
    for (let i = 0; i < gs; i++) {
      let v = h[i] * inv * (w ? w[(base + i) % dim] : 1);
      if (o.gate && o.normBeforeGate) v *= silu(o.gate[base + i]);
      out[base + i] = v;
    }
  }
  return out;
}

export function layerNorm(x: V, dim: number, w: V | null, b: V | null, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += dim) {
    let mu = 0;
    for (let i = 0; i < dim; i++) mu += x[base + i] / dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[base + i] - mu) ** 2 / dim;
    for (let i = 0; i < dim; i++)
      out[base + i] = ((x[base + i] - mu) / Math.sqrt(v + eps)) * (w ? w[i] : 1) + (b ? b[i] : 0);
  }
  return out;
}

/** Rotate-half rotary on x [b, s, h, hd] with tables [s, rot] (angles repeated in both halves). */
export function rotary(x: V, [b, s, h, hd]: S, cos: V, sin: V, rot: number): Float64Array {
  const out = Float64Array.from(x);
  const half = rot / 2;
  for (let z = 0; z < b; z++)
    for (let t = 0; t < s; t++)
      for (let q = 0; q < h; q++) {
        const base = ((z * s + t) * h + q) * hd;
        for (let i = 0; i < rot; i++) {
          const other = i < half ? -x[base + i + half] : x[base + i - half];
          out[base + i] = x[base + i] * cos[t * rot + i] + other * sin[t * rot + i];
        }
      }
  return out;
}

export interface AttnOpts {
  causal?: boolean;
  queryOffset?: number;
  kvLength?: number;
  scale?: number;
  mask?: V | null;
  segments?: readonly number[] | null;
}

/** q [b, sq, hq, d], k/v [b, skv, hkv, d|dv]; GQA head h reads kv head ⌊h·hkv/hq⌋. */
export function attention(q: V, qs: S, k: V, ks: S, v: V, dv: number, o: AttnOpts = {}): Float64Array {
  const [b, sq, hq, d] = qs;
  const [, skv, hkv] = ks;
  const L = o.kvLength ?? skv;
  const scale = o.scale ?? 1 / Math.sqrt(d);
  const seg = (i: number) => (o.segments ? o.segments.findIndex((e) => e > i) : 0);
  const out = new Float64Array(b * sq * hq * dv);
  for (let z = 0; z < b; z++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor((h * hkv) / hq);
      for (let i = 0; i < sq; i++) {
        const sc = new Float64Array(L);
        for (let j = 0; j < L; j++) {
          let s = 0;
          for (let c = 0; c < d; c++)
            s += q[((z * sq + i) * hq + h) * d + c] * k[((z * skv + j) * hkv + kh) * d + c];
          s *= scale;
          if (o.mask) s += o.mask[(o.mask.length === sq * L ? 0 : z * sq * L) + i * L + j];
          if ((o.causal && j > (o.queryOffset ?? 0) + i) || (o.segments && seg(i) !== seg(j)))
            s = Number.NEGATIVE_INFINITY;
          sc[j] = s;
        }
        const p = softmax(sc, L);
        for (let c = 0; c < dv; c++) {
          let acc = 0;
          for (let j = 0; j < L; j++) acc += p[j] * v[((z * skv + j) * hkv + kh) * dv + c];
          out[((z * sq + i) * hq + h) * dv + c] = acc;
        }
      }
    }
  return out;
}

/** Causal depthwise conv over x [b, l, c] with w [c, W]; y then the last W−1 inputs of [state; x]. */
export function conv1d(
  x: V,
  [b, l, c]: S,
  w: V,
  W: number,
  bias: V | null,
  state: V | null,
  useSilu: boolean,
): { y: Float64Array; state: Float64Array } {
  const xp = (z: number, t: number, ch: number) =>
    t < W - 1 ? (state ? state[(z * (W - 1) + t) * c + ch] : 0) : x[(z * l + t - (W - 1)) * c + ch];
  const y = new Float64Array(b * l * c);
  const st = new Float64Array(b * (W - 1) * c);
  for (let z = 0; z < b; z++)
    for (let ch = 0; ch < c; ch++) {
      for (let t = 0; t < l; t++) {
        let s = bias ? bias[ch] : 0;
        for (let j = 0; j < W; j++) s += w[ch * W + j] * xp(z, t + j, ch);
        y[(z * l + t) * c + ch] = useSilu ? silu(s) : s;
      }
      for (let j = 0; j < W - 1; j++) st[(z * (W - 1) + j) * c + ch] = xp(z, l + j, ch);
    }
  return { y, state: st };
}

/** The SSD recurrence step by step: s_t = e^{dt_t·A}·s + dt_t·x_t⊗B_t, y_t = s_t·C_t + D·x_t. */
export function ssd(
  x: V,
  [b, L, H, P]: S,
  dt: V,
  A: V,
  B: V,
  C: V,
  G: number,
  N: number,
  D: V | null,
  init: V | null,
): { y: Float64Array; state: Float64Array } {
  const y = new Float64Array(b * L * H * P);
  const state = new Float64Array(b * H * P * N);
  if (init) state.set(init);
  for (let z = 0; z < b; z++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      for (let t = 0; t < L; t++) {
        const d = dt[(z * L + t) * H + h];
        const decay = Math.exp(d * A[h]);
        for (let p = 0; p < P; p++) {
          const xv = x[((z * L + t) * H + h) * P + p];
          let acc = 0;
          for (let n = 0; n < N; n++) {
            const si = ((z * H + h) * P + p) * N + n;
            state[si] = decay * state[si] + d * xv * B[((z * L + t) * G + g) * N + n];
            acc += state[si] * C[((z * L + t) * G + g) * N + n];
          }
          y[((z * L + t) * H + h) * P + p] = acc + (D ? D[h] * xv : 0);
        }
      }
    }
  return { y, state };
}
