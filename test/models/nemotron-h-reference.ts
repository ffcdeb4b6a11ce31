/**
 * Nemotron-H in float64, written from the equations for the tests: one token at a time through the whole stack
 * (which a causal model allows), the Mamba-2 mixer as its sequential recurrence (conv window, per-head SSM state,
 * B/C of group ⌊head / (heads / n_groups)⌋, grouped gated RMSNorm after the gate), attention over every key so
 * far (kv head ⌊h / (hq / hkv)⌋), the MLP down(relu(up(x))²). Weights are read by their Hugging Face names.
 * Also a random-weight initialiser in the style of tools/reference/nemotron_h_fixtures.py.
 */
import type { NemotronHConfig } from '../../src/models/nemotron_h/config.js';

export type Weights = Map<string, Float32Array>;

type LayerState =
  | { kind: 'M'; window: Float64Array[]; ssm: Float64Array }
  | { kind: '*'; keys: Float64Array[]; values: Float64Array[] }
  | { kind: '-' };

const silu = (v: number) => v / (1 + Math.exp(-v));
const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));

/** W [out, in] · x (+ b). */
function linear(w: Weights, name: string, x: ArrayLike<number>, bias = false): Float64Array {
  const W = w.get(`${name}.weight`)!;
  const b = bias ? w.get(`${name}.bias`)! : null;
  const n = x.length;
  const out = new Float64Array(W.length / n);
  for (let o = 0; o < out.length; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < n; i++) s += W[o * n + i] * x[i];
    out[o] = s;
  }
  return out;
}

/** RMSNorm over groups of `group` values, times the weight. */
function rms(x: ArrayLike<number>, weight: ArrayLike<number>, eps: number, group = x.length): Float64Array {
  const out = new Float64Array(x.length);
  for (let g0 = 0; g0 < x.length; g0 += group) {
    let ss = 0;
    for (let i = g0; i < g0 + group; i++) ss += x[i] * x[i];
    const inv = 1 / Math.sqrt(ss / group + eps);
    for (let i = g0; i < g0 + group; i++) out[i] = x[i] * inv * weight[i];
  }
  return out;
}

export class NaiveNemotronH {
  constructor(
    readonly c: NemotronHConfig,
    readonly w: Weights,
  ) {}

  newState(): LayerState[] {
    const c = this.c;
    const convDim = c.mamba_num_heads * c.mamba_head_dim + 2 * c.n_groups * c.ssm_state_size;
    return [...c.hybrid_override_pattern].map((ch): LayerState => {
      if (ch === 'M')
        return {
          kind: 'M',
          window: Array.from({ length: c.conv_kernel - 1 }, () => new Float64Array(convDim)),
          ssm: new Float64Array(c.mamba_num_heads * c.mamba_head_dim * c.ssm_state_size),
        };
      return ch === '*' ? { kind: '*', keys: [], values: [] } : { kind: '-' };
    });
  }

  /** Logit rows for `ids` after what `state` has seen (updated). */
  forward(ids: readonly number[], state: LayerState[]): Float64Array[] {
    const c = this.c;
    const H = c.hidden_size;
    const emb = this.w.get('backbone.embeddings.weight')!;
    return ids.map((id) => {
      let x = Float64Array.from(emb.subarray(id * H, (id + 1) * H));
      state.forEach((s, i) => {
        const p = `backbone.layers.${i}`;
        const h = rms(x, this.w.get(`${p}.norm.weight`)!, c.layer_norm_epsilon);
        const y =
          s.kind === 'M'
            ? this.mamba(`${p}.mixer`, h, s)
            : s.kind === '*'
              ? this.attention(`${p}.mixer`, h, s)
              : this.mlp(`${p}.mixer`, h);
        x = x.map((v, j) => v + y[j]);
      });
      return linear(this.w, 'lm_head', rms(x, this.w.get('backbone.norm_f.weight')!, c.layer_norm_epsilon));
    });
  }

  private mamba(p: string, h: Float64Array, s: LayerState & { kind: 'M' }): Float64Array {
    const c = this.c;
    const [nh, hd, N, ng, k] = [
      c.mamba_num_heads,
      c.mamba_head_dim,
      c.ssm_state_size,
      c.n_groups,
      c.conv_kernel,
    ];
    const I = nh * hd;
    const convDim = I + 2 * ng * N;
    const proj = linear(this.w, `${p}.in_proj`, h, c.use_bias);
    const z = proj.subarray(0, I);
    const xbc = proj.slice(I, I + convDim);
    const dtRaw = proj.subarray(I + convDim);
    // Causal depthwise conv over the last k inputs (oldest first), then SiLU.
    const rows = [...s.window, xbc];
    const cw = this.w.get(`${p}.conv1d.weight`)!;
    const cb = c.use_conv_bias ? this.w.get(`${p}.conv1d.bias`)! : null;
    const u = new Float64Array(convDim);
    for (let ch = 0; ch < convDim; ch++) {
      let acc = cb ? cb[ch] : 0;
      for (let j = 0; j < k; j++) acc += cw[ch * k + j] * rows[j][ch];
      u[ch] = silu(acc);
    }
    s.window = rows.slice(1);
    const [dtBias, Alog, D] = ['dt_bias', 'A_log', 'D'].map((n) => this.w.get(`${p}.${n}`)!);
    const y = new Float64Array(I);
    for (let hh = 0; hh < nh; hh++) {
      const g = Math.floor(hh / (nh / ng));
      const [lo, hi] = c.time_step_limit;
      const dt = Math.min(hi, Math.max(lo, softplus(dtRaw[hh] + dtBias[hh])));
      const decay = Math.exp(-Math.exp(Alog[hh]) * dt);
      for (let q = 0; q < hd; q++) {
        const xv = u[hh * hd + q];
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const i = (hh * hd + q) * N + n;
          s.ssm[i] = decay * s.ssm[i] + dt * xv * u[I + g * N + n];
          acc += u[I + ng * N + g * N + n] * s.ssm[i];
        }
        y[hh * hd + q] = acc + D[hh] * xv;
      }
    }
    const gated = y.map((v, i) => v * silu(z[i]));
    const normed = rms(gated, this.w.get(`${p}.norm.weight`)!, c.layer_norm_epsilon, I / ng);
    return linear(this.w, `${p}.out_proj`, normed, c.use_bias);
  }

  private attention(p: string, h: Float64Array, s: LayerState & { kind: '*' }): Float64Array {
    const c = this.c;
    const [nq, nkv, d] = [c.num_attention_heads, c.num_key_value_heads, c.head_dim];
    const q = linear(this.w, `${p}.q_proj`, h);
    s.keys.push(linear(this.w, `${p}.k_proj`, h));
    s.values.push(linear(this.w, `${p}.v_proj`, h));
    const out = new Float64Array(nq * d);
    for (let hq = 0; hq < nq; hq++) {
      const kv = Math.floor(hq / (nq / nkv));
      const scores = s.keys.map((key) => {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += q[hq * d + j] * key[kv * d + j];
        return dot / Math.sqrt(d);
      });
      const m = Math.max(...scores);
      const e = scores.map((v) => Math.exp(v - m));
      const z = e.reduce((a, b) => a + b, 0);
      s.values.forEach((v, t) => {
        for (let j = 0; j < d; j++) out[hq * d + j] += (e[t] / z) * v[kv * d + j];
      });
    }
    return linear(this.w, `${p}.o_proj`, out);
  }

  private mlp(p: string, h: Float64Array): Float64Array {
    const up = linear(this.w, `${p}.up_proj`, h, this.c.mlp_bias).map((v) => Math.max(v, 0) ** 2);
    return linear(this.w, `${p}.down_proj`, up, this.c.mlp_bias);
  }
}

/** Greedy continuation of `prompt` for `steps` tokens, and the smallest gap between the top two logits. */
export function naiveGreedy(
  model: NaiveNemotronH,
  prompt: readonly number[],
  steps: number,
): { tokens: number[]; margin: number } {
  const state = model.newState();
  let row = model.forward(prompt, state).at(-1)!;
  const tokens: number[] = [];
  let margin = Number.POSITIVE_INFINITY;
  for (let i = 0; i < steps; i++) {
    const order = [...row.keys()].sort((a, b) => row[b] - row[a]);
    margin = Math.min(margin, row[order[0]] - row[order[1]]);
    tokens.push(order[0]);
    row = model.forward([order[0]], state)[0];
  }
  return { tokens, margin };
}

/**
 * Random weights for every (name, shape): norms near 1, projections ~ 1/√fan-in, A_log in log [1, 16], dt_bias
 * the inverse softplus of steps in [0.01, 0.3] (the state decays visibly within a few tokens), D near 1.
 */
export function randomWeights(
  specs: readonly { name: string; shape: readonly number[] }[],
  r: () => number,
): Weights {
  const w: Weights = new Map();
  const u = () => 2 * r() - 1;
  for (const { name, shape } of specs) {
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.length === 2 ? shape[1] : shape.length === 3 ? shape[2] : 1;
    const init = (): number => {
      if (/norm(_f)?\.weight$/.test(name)) return 1 + 0.2 * u();
      if (name.endsWith('.A_log')) return Math.log(1 + 15 * r());
      if (name.endsWith('.dt_bias')) {
        const dt = Math.exp(Math.log(0.01) + r() * (Math.log(0.3) - Math.log(0.01)));
        return dt + Math.log(-Math.expm1(-dt));
      }
      if (name.endsWith('.D')) return 1 + 0.2 * u();
      if (name.endsWith('embeddings.weight')) return u();
      if (name.endsWith('.bias')) return 0.1 * u();
      return (1.7 * u()) / Math.sqrt(fanIn);
    };
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = init();
    w.set(name, a);
  }
  return w;
}
