/**
 * Mamba-2 (mamba_ssm `Mamba2`, transformers `Mamba2Mixer` / `NemotronHMamba2Mixer`; the mixer of Vamba's
 * video blocks, Nemotron-H and MambaMia), owning its parameters under the Hugging Face names:
 *
 *   [z | x | B C | dt] = in_proj(u)                       (each part projected on its own)
 *   xBC = silu(conv1d(xBC))                                (causal, depthwise, width d_conv)
 *   dt  = softplus(dt + dt_bias) clamped to dt_limit,  A = −exp(A_log)          (f32)
 *   y   = SSD(x, dt, A, B, C) + D·x                        (chunked scan, state carried in f32)
 *   y   = RMSNorm(y·silu(z)) per norm group  (Vamba, Nemotron-H)  or  RMSNorm(y)·silu(z)  (norm before gate)
 *   out = out_proj(y)
 *
 * Bidirectional (MambaMia `v2`): the same in_proj output is also scanned from the end with a second set of
 * scan parameters (`conv1d_b`, `dt_bias_b`, `A_b_log`, `D_b`, `norm_b`); the two gated outputs are summed
 * (or concatenated, out_proj then reads 2·d_inner) before the shared out_proj.
 *
 * A causal sequence can be fed in pieces: `prefill` takes and returns the conv and SSM states, and `step`
 * advances one token in place; `forward` with a cache layer picks between the two.
 */
import { ModelError } from '../errors.js';
import { active } from '../runtime/grad-hook.js';
import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import type { HybridCache } from './cache.js';
import { Linear, rowsOf } from './linear.js';
import { RMSNorm } from './norm.js';
import type { ParamSpec, ParamStore } from './params.js';

export interface Mamba2Config {
  /** Model width (in_proj input, out_proj output). */
  dModel: number;
  /** SSM width d_ssm = nHeads · headDim. */
  dInner: number;
  dState: number;
  dConv: number;
  headDim: number;
  /** Groups of heads sharing B and C. */
  nGroups: number;
  /** SSD chunk length (256 in mamba_ssm); any value gives the same result up to rounding. */
  chunkSize: number;
  /** Gated RMSNorm on y (mamba_ssm `rmsnorm=True`); false: y·silu(z) without a norm. */
  rmsnorm: boolean;
  /** RMSNorm(y)·silu(z) (MambaMia) instead of RMSNorm(y·silu(z)) (Vamba, Nemotron-H). */
  normBeforeGate: boolean;
  /** Channels per norm group; mamba_ssm and Nemotron-H use d_inner / n_groups. */
  normGroupSize: number;
  normEps: number;
  /** dt is clamped to [lo, hi] after the softplus; (0, ∞) disables. */
  dtLimit: readonly [number, number];
  /** in_proj and out_proj have biases (`use_bias`). */
  bias: boolean;
  /** conv1d has a bias (`use_conv_bias`). */
  convBias: boolean;
  /** A second, backward scan (MambaMia) and how the two directions combine; null: causal. */
  bidirectional: 'sum' | 'concat' | null;
}

/** mamba_ssm defaults for a model width (Vamba: 3584 → d_inner 7168, 112 heads of 64, d_state 128). */
export function mamba2Config(
  dModel: number,
  o: Partial<Mamba2Config> & { expand?: number } = {},
): Mamba2Config {
  const dInner = o.dInner ?? (o.expand ?? 2) * dModel;
  const nGroups = o.nGroups ?? 1;
  return {
    dModel,
    dInner,
    dState: o.dState ?? 128,
    dConv: o.dConv ?? 4,
    headDim: o.headDim ?? 64,
    nGroups,
    chunkSize: o.chunkSize ?? 256,
    rmsnorm: o.rmsnorm ?? true,
    normBeforeGate: o.normBeforeGate ?? false,
    normGroupSize: o.normGroupSize ?? dInner / nGroups,
    normEps: o.normEps ?? 1e-5,
    dtLimit: o.dtLimit ?? [0, Number.POSITIVE_INFINITY],
    bias: o.bias ?? false,
    convBias: o.convBias ?? true,
    bidirectional: o.bidirectional ?? null,
  };
}

/** The recurrent state after a prefix: the last d_conv−1 conv inputs and the SSM state (f32). */
export interface Mamba2State {
  conv: Tensor;
  ssm: Tensor;
}

/** Releases a state's tensors. */
export function disposeState(s: Mamba2State): void {
  s.conv.dispose();
  s.ssm.dispose();
}

type Part = ReturnType<typeof rowsOf>;

const negExp = (aLog: Tensor) => tidy(() => ops.scale(ops.exp(ops.cast(aLog, 'f32')), -1));

/** Names of one scan direction's parameters: the forward ones, or MambaMia's backward `_b` set. */
const scanNames = (backward: boolean) =>
  backward
    ? { conv1d: 'conv1d_b', dt_bias: 'dt_bias_b', A_log: 'A_b_log', D: 'D_b', norm: 'norm_b' }
    : { conv1d: 'conv1d', dt_bias: 'dt_bias', A_log: 'A_log', D: 'D', norm: 'norm' };

/** One scan direction: conv1d, dt_bias, A_log, D and the gated norm; from the projected inputs to gated y. */
class Scan implements Disposable {
  /** −exp(A_log) and dt_bias in f32, computed once (see the getters). */
  readonly #A: Tensor;
  readonly #dtBias: Tensor;
  /** conv1d's channels [x | B C], each convolved on its own (views of the weight). */
  readonly conv: { x: Part; bc: Part };

  constructor(
    readonly config: Mamba2Config,
    readonly conv1d: { weight: Tensor; bias: Tensor | null },
    readonly dt_bias: Tensor,
    readonly A_log: Tensor,
    readonly D: Tensor,
    readonly norm: RMSNorm | null,
  ) {
    const c = config;
    this.#A = negExp(A_log);
    this.#dtBias = ops.cast(dt_bias, 'f32');
    const convDim = c.dInner + 2 * c.nGroups * c.dState;
    this.conv = {
      x: rowsOf(conv1d.weight, conv1d.bias, 0, c.dInner),
      bc: rowsOf(conv1d.weight, conv1d.bias, c.dInner, convDim),
    };
  }

  /** −exp(A_log); recomputed on each use while autograd records, so that A_log gets its gradient. */
  get A(): Tensor {
    return active ? negExp(this.A_log) : this.#A;
  }
  /** dt_bias in f32; recomputed on each use while autograd records (as A). */
  get dtBias(): Tensor {
    return active ? ops.cast(this.dt_bias, 'f32') : this.#dtBias;
  }

  static specs(prefix: string, c: Mamba2Config, backward: boolean): ParamSpec[] {
    const n = scanNames(backward);
    const nHeads = c.dInner / c.headDim;
    const convDim = c.dInner + 2 * c.nGroups * c.dState;
    const s: ParamSpec[] = [{ name: `${prefix}.${n.conv1d}.weight`, shape: [convDim, 1, c.dConv] }];
    if (c.convBias) s.push({ name: `${prefix}.${n.conv1d}.bias`, shape: [convDim] });
    for (const k of [n.dt_bias, n.A_log, n.D] as const) s.push({ name: `${prefix}.${k}`, shape: [nHeads] });
    if (c.rmsnorm) s.push(...RMSNorm.specs(`${prefix}.${n.norm}`, c.dInner));
    return s;
  }

  static load(p: ParamStore, prefix: string, c: Mamba2Config, backward: boolean): Scan {
    const n = scanNames(backward);
    return new Scan(
      c,
      {
        weight: p.take(`${prefix}.${n.conv1d}.weight`),
        bias: c.convBias ? p.take(`${prefix}.${n.conv1d}.bias`) : null,
      },
      p.take(`${prefix}.${n.dt_bias}`),
      p.take(`${prefix}.${n.A_log}`),
      p.take(`${prefix}.${n.D}`),
      c.rmsnorm ? RMSNorm.load(p, `${prefix}.${n.norm}`, c.normEps) : null,
    );
  }

  /**
   * Projected inputs (x, B‖C, raw dt, z: [batch, len, ·]) → gated y [batch, len, dInner] and the state after
   * them, continuing from `state` (zeros when null).
   */
  scan(
    p: { x: Tensor; bc: Tensor; dt: Tensor; z: Tensor },
    state: Mamba2State | null,
  ): { y: Tensor; state: Mamba2State } {
    const c = this.config;
    const [batch, len] = p.x.shape;
    const nHeads = c.dInner / c.headDim;
    const m = this.convolve(p, state?.conv ?? null);
    const ssd = ops.ssdScan(
      {
        x: m.x.reshape([batch, len, nHeads, c.headDim]),
        dt: this.timeStep(p.dt),
        A: this.A,
        B: m.B.reshape([batch, len, c.nGroups, c.dState]),
        C: m.C.reshape([batch, len, c.nGroups, c.dState]),
        D: this.D,
        state: state?.ssm ?? null,
      },
      c.chunkSize,
    );
    return {
      y: this.gate(ssd.y.reshape([batch, len, c.dInner]), p.z),
      state: { conv: m.conv, ssm: ssd.state },
    };
  }

  /**
   * One token (inputs [batch, 1, ·]) → gated y [batch, dInner]; `state` is advanced in place. The fused step
   * (conv, dt and SSM update in one call) where the backend has it, each batch row through views of the state.
   */
  step(p: { x: Tensor; bc: Tensor; dt: Tensor; z: Tensor }, state: Mamba2State): Tensor {
    const c = this.config;
    const batch = p.x.shape[0];
    if (ops.hasMambaStepRows(p.x.backend)) {
      const rows = (t: Tensor) => Array.from({ length: batch }, (_, i) => t.narrow(i, i + 1));
      const [conv, ssm] = batch === 1 ? [[state.conv], [state.ssm]] : [rows(state.conv), rows(state.ssm)];
      return this.fusedStep(
        p,
        conv.map((t, i) => ({ conv: t, ssm: ssm[i] })),
      );
    }
    const nHeads = c.dInner / c.headDim;
    const m = this.convolve(p, state.conv);
    ops.writeSlice(state.conv, m.conv, 1, 0);
    const y = ops.ssmStep({
      x: m.x.reshape([batch, nHeads, c.headDim]),
      dt: this.timeStep(p.dt).reshape([batch, nHeads]),
      A: this.A,
      B: m.B.reshape([batch, c.nGroups, c.dState]),
      C: m.C.reshape([batch, c.nGroups, c.dState]),
      D: this.D,
      state: state.ssm,
    });
    return this.gate(y.reshape([batch, c.dInner]), p.z.reshape([batch, c.dInner]));
  }

  /**
   * One token of each of n sequences (inputs [n, 1, ·], row i of states[i]) → gated y [n, dInner]; the states
   * advance in place. One fused call where the backend has it, else a step per sequence on views.
   */
  stepRows(p: { x: Tensor; bc: Tensor; dt: Tensor; z: Tensor }, states: readonly Mamba2State[]): Tensor {
    const n = p.x.shape[0];
    if (ops.hasMambaStepRows(p.x.backend)) return this.fusedStep(p, states);
    const row = (t: Tensor, i: number) => t.narrow(i, i + 1);
    const ys = states.map((s, i) =>
      this.step({ x: row(p.x, i), bc: row(p.bc, i), dt: row(p.dt, i), z: row(p.z, i) }, s),
    );
    return n === 1 ? ys[0] : ops.concat(ys, 0);
  }

  /** `mambaStepRows` then the gate: inputs [n, 1, ·], row i advancing states[i]. */
  private fusedStep(p: { x: Tensor; bc: Tensor; dt: Tensor; z: Tensor }, states: readonly Mamba2State[]) {
    const c = this.config;
    const n = p.x.shape[0];
    const flat = (t: Tensor) => t.reshape([n, t.shape[2]]);
    const y = ops.mambaStepRows({
      x: flat(p.x),
      bc: flat(p.bc),
      dt: flat(p.dt),
      conv: this.conv1d,
      dtBias: this.dtBias,
      A: this.A,
      D: this.D,
      dtLimit: c.dtLimit,
      headDim: c.headDim,
      groups: c.nGroups,
      states,
    });
    return this.gate(y, flat(p.z));
  }

  /** silu(conv(x)), B and C from silu(conv(B‖C)), and the conv state after them as one tensor. */
  private convolve(p: { x: Tensor; bc: Tensor }, convState: Tensor | null) {
    const c = this.config;
    const gd = c.nGroups * c.dState;
    const [sx, sbc] = convState ? ops.split(convState, -1, [c.dInner, 2 * gd]) : [null, null];
    const cx = ops.conv1dCausal(p.x, this.conv.x.weight, this.conv.x.bias, { state: sx, silu: true });
    const cbc = ops.conv1dCausal(p.bc, this.conv.bc.weight, this.conv.bc.bias, { state: sbc, silu: true });
    const [B, C] = ops.split(cbc.y, -1, [gd, gd]);
    return { x: cx.y, B, C, conv: ops.concat([cx.state, cbc.state], -1) };
  }

  /** softplus(dt + dt_bias) in f32, clamped to dt_limit when it is set. */
  private timeStep(dtRaw: Tensor): Tensor {
    const [lo, hi] = this.config.dtLimit;
    let dt = ops.softplus(ops.add(ops.cast(dtRaw, 'f32'), this.dtBias));
    const backend = dt.backend;
    if (lo > 0) dt = ops.maximum(dt, ops.full(backend, [1], lo));
    if (hi < Number.POSITIVE_INFINITY) dt = ops.minimum(dt, ops.full(backend, [1], hi));
    return dt;
  }

  /** The gate, with the (grouped) RMSNorm before or after it. */
  private gate(y: Tensor, z: Tensor): Tensor {
    const c = this.config;
    if (!this.norm) return ops.mul(y, ops.silu(z));
    return ops.rmsNorm(y, this.norm.weight, {
      eps: c.normEps,
      gate: z,
      normBeforeGate: c.normBeforeGate,
      groupSize: c.normGroupSize,
    });
  }

  [Symbol.dispose](): void {
    for (const t of [this.#A, this.#dtBias, this.dt_bias, this.A_log, this.D, this.conv1d.weight])
      t.dispose();
    this.conv1d.bias?.dispose();
    for (const p of Object.values(this.conv)) {
      p.weight.dispose();
      p.bias?.dispose();
    }
    this.norm?.[Symbol.dispose]();
  }
}

export class Mamba2 implements Disposable {
  readonly nHeads: number;
  readonly convDim: number;
  /**
   * in_proj's output parts [z | x | B C | dt], each projected on its own: on long inputs, splitting one packed
   * output would copy ~2·d_inner values per token (views of in_proj's weight).
   */
  readonly parts: { z: Linear; x: Linear; bc: Linear; dt: Linear };

  constructor(
    readonly config: Mamba2Config,
    readonly in_proj: Linear,
    /** The forward scan's parameters (conv1d, dt_bias, A_log, D, norm). */
    readonly fwd: Scan,
    /** The backward scan's (`_b` names) when bidirectional. */
    readonly bwd: Scan | null,
    readonly out_proj: Linear,
  ) {
    const c = config;
    if (c.dInner % c.headDim)
      throw new ModelError(`Mamba-2: d_inner ${c.dInner} is not a multiple of headdim ${c.headDim}`);
    this.nHeads = c.dInner / c.headDim;
    if (this.nHeads % c.nGroups)
      throw new ModelError(`Mamba-2: ${this.nHeads} heads are not a multiple of ngroups ${c.nGroups}`);
    if (c.dInner % c.normGroupSize)
      throw new ModelError(`Mamba-2: norm group size ${c.normGroupSize} does not divide d_inner ${c.dInner}`);
    if (!c.bidirectional !== !bwd)
      throw new ModelError('Mamba-2: a bidirectional mixer needs the backward scan parameters, and only it');
    const [dI, cd] = [c.dInner, c.dInner + 2 * c.nGroups * c.dState];
    this.convDim = cd;
    this.parts = {
      z: in_proj.rows(0, dI),
      x: in_proj.rows(dI, 2 * dI),
      bc: in_proj.rows(2 * dI, dI + cd),
      dt: in_proj.rows(dI + cd, dI + cd + this.nHeads),
    };
  }

  /** The parameters (Hugging Face names) under `prefix`. */
  static specs(prefix: string, c: Mamba2Config): ParamSpec[] {
    const nHeads = c.dInner / c.headDim;
    const inOut = 2 * c.dInner + 2 * c.nGroups * c.dState + nHeads;
    const yDim = c.bidirectional === 'concat' ? 2 * c.dInner : c.dInner;
    return [
      ...Linear.specs(`${prefix}.in_proj`, c.dModel, inOut, c.bias),
      ...Scan.specs(prefix, c, false),
      ...(c.bidirectional ? Scan.specs(prefix, c, true) : []),
      ...Linear.specs(`${prefix}.out_proj`, yDim, c.dModel, c.bias),
    ];
  }

  static load(p: ParamStore, prefix: string, c: Mamba2Config): Mamba2 {
    return new Mamba2(
      c,
      Linear.load(p, `${prefix}.in_proj`, c.bias),
      Scan.load(p, prefix, c, false),
      c.bidirectional ? Scan.load(p, prefix, c, true) : null,
      Linear.load(p, `${prefix}.out_proj`, c.bias),
    );
  }

  /** A zero state for `batch` sequences. */
  initialState(batch = 1): Mamba2State {
    const w = this.in_proj.weight;
    return {
      conv: ops.zeros(w.backend, [batch, this.config.dConv - 1, this.convDim], w.dtype),
      ssm: ops.zeros(w.backend, [batch, this.nHeads, this.config.headDim, this.config.dState], 'f32'),
    };
  }

  /**
   * u [batch, len, dModel] → y [batch, len, dModel]. With a cache layer (causal mixers), continues from the
   * layer's state and leaves the new state there: one token advances it in place, more run a prefill.
   */
  forward(u: Tensor, cache: { cache: HybridCache; layer: number } | null = null): Tensor {
    if (!cache) return this.bwd ? this.bidirectional(u) : tidy(() => this.prefill(u).y);
    const state = cache.cache.mambaState(cache.layer);
    if (state && u.shape[1] === 1)
      return tidy(() => this.step(u.reshape([u.shape[0], this.config.dModel]), state).reshape(u.shape));
    const r = this.prefill(u, state);
    cache.cache.setMambaState(cache.layer, r.state);
    return r.y;
  }

  /**
   * A causal piece u [batch, len, dModel] → y, continuing from `state` (zeros when null). Returns the state
   * after u; the given state is left untouched.
   */
  prefill(u: Tensor, state: Mamba2State | null = null): { y: Tensor; state: Mamba2State } {
    this.assertCausal('prefill');
    return tidy(() => {
      const r = this.fwd.scan(this.project(u), state);
      return { y: this.out_proj.forward(r.y), state: r.state };
    });
  }

  /** One token: u [batch, dModel] → y [batch, dModel]; `state` is advanced in place. */
  step(u: Tensor, state: Mamba2State): Tensor {
    this.assertCausal('step');
    const batch = u.shape[0];
    return tidy(() =>
      this.out_proj.forward(
        this.fwd.step(this.project(u.reshape([batch, 1, this.config.dModel]), true), state),
      ),
    );
  }

  /**
   * Batched decoding: row i of u [n, dModel] is one token of the sequence whose state is states[i] (advanced
   * in place). The projections run once for all rows; the conv and SSM updates per sequence.
   */
  stepRows(u: Tensor, states: readonly Mamba2State[]): Tensor {
    this.assertCausal('step');
    const n = u.shape[0];
    return tidy(() => {
      const p = this.project(u.reshape([n, 1, this.config.dModel]), true);
      return this.out_proj.forward(this.fwd.stepRows(p, states));
    });
  }

  /** Both directions over the whole sequence, combined before out_proj. */
  private bidirectional(u: Tensor): Tensor {
    return tidy(() => {
      const p = this.project(u);
      const f = this.fwd.scan(p, null).y;
      const flip = (t: Tensor) => ops.flip(t, 1);
      const b = flip(this.bwd!.scan({ x: flip(p.x), bc: flip(p.bc), dt: flip(p.dt), z: flip(p.z) }, null).y);
      return this.out_proj.forward(
        this.config.bidirectional === 'sum' ? ops.add(f, b) : ops.concat([f, b], -1),
      );
    });
  }

  /**
   * in_proj's parts of u [batch, len, dModel]. A decode step of one token on a backend with the fused step:
   * one GEMV over the whole weight and the parts are views of its output row (one launch instead of four; the
   * views go only to mambaStepRows and the gate, which read them element by element); otherwise a GEMM per
   * part (see `parts`).
   */
  private project(u: Tensor, step = false) {
    const { z, x, bc, dt } = this.parts;
    if (!step || u.size !== this.config.dModel || !ops.hasMambaStepRows(u.backend))
      return { z: z.forward(u), x: x.forward(u), bc: bc.forward(u), dt: dt.forward(u) };
    const all = this.in_proj.forward(u).reshape([this.in_proj.outFeatures]);
    let at = 0;
    const next = (l: Linear) => {
      const v = all.narrow(at, at + l.outFeatures).reshape([1, 1, l.outFeatures]);
      at += l.outFeatures;
      return v;
    };
    return { z: next(z), x: next(x), bc: next(bc), dt: next(dt) };
  }

  private assertCausal(what: string): void {
    if (this.bwd)
      throw new ModelError(
        `Mamba-2: ${what} needs a causal mixer; a bidirectional one sees the whole sequence`,
      );
  }

  [Symbol.dispose](): void {
    for (const l of [this.in_proj, ...Object.values(this.parts), this.out_proj]) l[Symbol.dispose]();
    this.fwd[Symbol.dispose]();
    this.bwd?.[Symbol.dispose]();
  }
}

/**
 * A pre-norm residual Mamba-2 block (mamba_ssm `Block`, residual_in_fp32 off): u + mixer(RMSNorm(u)), with
 * the parameters `norm.weight` and `mixer.*` under its prefix.
 */
export class Mamba2Block implements Disposable {
  constructor(
    readonly norm: RMSNorm,
    readonly mixer: Mamba2,
  ) {}

  static specs(prefix: string, c: Mamba2Config): ParamSpec[] {
    return [...RMSNorm.specs(`${prefix}.norm`, c.dModel), ...Mamba2.specs(`${prefix}.mixer`, c)];
  }

  static load(p: ParamStore, prefix: string, c: Mamba2Config, normEps: number): Mamba2Block {
    return new Mamba2Block(RMSNorm.load(p, `${prefix}.norm`, normEps), Mamba2.load(p, `${prefix}.mixer`, c));
  }

  /** u + mixer(RMSNorm(u)), through a cache layer when given (see Mamba2.forward). */
  forward(u: Tensor, cache: { cache: HybridCache; layer: number } | null = null): Tensor {
    return tidy(() => ops.add(u, this.mixer.forward(this.norm.forward(u), cache)));
  }

  /** One causal piece with the state carried in and out (see Mamba2.prefill). */
  prefill(u: Tensor, state: Mamba2State | null = null): { y: Tensor; state: Mamba2State } {
    return tidy(() => {
      const r = this.mixer.prefill(this.norm.forward(u), state);
      return { y: ops.add(u, r.y), state: r.state };
    });
  }

  /**
   * The whole causal sequence u [batch, len, dModel], `chunkLen` tokens at a time with the state carried
   * across chunks: the result equals one `prefill` (up to rounding) while the in_proj/SSD temporaries only
   * ever hold one chunk. With `inPlace` the result overwrites u (each chunk is read before it is written).
   */
  forwardChunked(u: Tensor, chunkLen: number, opts: { inPlace?: boolean } = {}): Tensor {
    const r = this.prefillChunked(u, chunkLen, null, opts);
    disposeState(r.state);
    return r.y;
  }

  /**
   * `forwardChunked` continuing from `state` (zeros when null; left untouched), returning the state after u
   * too: a sequence that arrives in pieces (a live video) is scanned piece by piece.
   */
  prefillChunked(
    u: Tensor,
    chunkLen: number,
    state: Mamba2State | null,
    opts: { inPlace?: boolean } = {},
  ): { y: Tensor; state: Mamba2State } {
    const [batch, len, dModel] = u.shape;
    if (!(chunkLen >= 1)) throw new RangeError(`Mamba2Block: chunk length ${chunkLen} must be ≥ 1`);
    if (!len) throw new RangeError('Mamba2Block: an empty sequence has no state to carry');
    const out = opts.inPlace ? u : ops.empty(u.backend, [batch, len, dModel], u.dtype);
    let carried: Mamba2State | null = null;
    try {
      for (let t0 = 0; t0 < len; t0 += chunkLen) {
        const prev: Mamba2State | null = carried ?? state;
        const next = tidy(() => {
          const t1 = Math.min(len, t0 + chunkLen);
          // One sequence: the chunk is a contiguous range of rows, so a view instead of a copy.
          const piece =
            batch === 1
              ? u
                  .reshape([len, dModel])
                  .narrow(t0, t1)
                  .reshape([1, t1 - t0, dModel])
              : ops.slice(u, 1, t0, t1);
          const r = this.prefill(piece, prev);
          ops.writeSlice(out, r.y, 1, t0);
          return r.state;
        });
        if (carried) disposeState(carried);
        carried = next;
      }
    } catch (e) {
      if (out !== u) out.dispose();
      if (carried) disposeState(carried);
      throw e;
    }
    return { y: out, state: carried! };
  }

  [Symbol.dispose](): void {
    this.norm[Symbol.dispose]();
    this.mixer[Symbol.dispose]();
  }
}
