/**
 * Mamba-2 (mamba_ssm 2.2.2 `Mamba2`, the mixer of Vamba's video blocks; also Nemotron-H and MambaMia).
 *
 *   [z | x | B | C | dt] = in_proj(u)                   (each part projected on its own)
 *   xBC = silu(causal_conv1d(xBC))                       (depthwise, width d_conv, with bias)
 *   dt  = softplus(dt + dt_bias),  A = −exp(A_log)         (f32)
 *   y   = SSD(x, dt, A, B, C) + D·x                        (chunked scan, state carried in f32)
 *   y   = RMSNorm_grouped(y · silu(z))  or  RMSNorm(y)·silu(z) when norm_before_gate
 *   out = out_proj(y)
 *
 * A sequence can be fed in pieces: `forward` takes and returns the conv and SSM states, so a long video is
 * processed chunk by chunk with transient memory bounded by the chunk, and `step` advances one token.
 */
import { ModelError } from '../errors.js';
import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import { rowsOf } from './linear.js';

export interface Mamba2Config {
  /** Model width (in_proj input, out_proj output). */
  dModel: number;
  /** SSM width d_ssm = nHeads · headDim. */
  dInner: number;
  dState: number;
  dConv: number;
  headDim: number;
  nGroups: number;
  /** SSD chunk length (256 in mamba_ssm); any value gives the same result up to rounding. */
  chunkSize: number;
  /** Gated RMSNorm on y (mamba_ssm `rmsnorm=True`); false: y·silu(z) without a norm. */
  rmsnorm: boolean;
  normBeforeGate: boolean;
  /** Channels per norm group; mamba_ssm uses d_ssm / ngroups. */
  normGroupSize: number;
  normEps: number;
  /** dt is clamped to [lo, hi] after the softplus; (0, ∞) disables. */
  dtLimit: readonly [number, number];
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
  };
}

/** Parameters under the mamba_ssm names (`in_proj.weight` → in_proj …). */
export interface Mamba2Weights {
  in_proj: Tensor;
  in_proj_bias?: Tensor | null;
  conv1d_weight: Tensor;
  conv1d_bias: Tensor | null;
  dt_bias: Tensor;
  A_log: Tensor;
  D: Tensor;
  norm_weight: Tensor | null;
  out_proj: Tensor;
  out_proj_bias?: Tensor | null;
}

/** The recurrent state after a prefix: the last d_conv−1 conv inputs and the SSM state (f32). */
export interface Mamba2State {
  conv: Tensor;
  ssm: Tensor;
}

export const mamba2ParamNames = [
  'in_proj.weight',
  'conv1d.weight',
  'conv1d.bias',
  'dt_bias',
  'A_log',
  'D',
  'norm.weight',
  'out_proj.weight',
] as const;

/** The shape of each mixer parameter (mamba_ssm names) for a config; biases of the projections are off. */
export function mamba2Shapes(c: Mamba2Config): Record<(typeof mamba2ParamNames)[number], number[]> {
  const nHeads = c.dInner / c.headDim;
  const convDim = c.dInner + 2 * c.nGroups * c.dState;
  return {
    'in_proj.weight': [2 * c.dInner + 2 * c.nGroups * c.dState + nHeads, c.dModel],
    'conv1d.weight': [convDim, 1, c.dConv],
    'conv1d.bias': [convDim],
    dt_bias: [nHeads],
    A_log: [nHeads],
    D: [nHeads],
    'norm.weight': [c.dInner],
    'out_proj.weight': [c.dModel, c.dInner],
  };
}

type Part = ReturnType<typeof rowsOf>;

export class Mamba2Mixer {
  readonly nHeads: number;
  readonly convDim: number;
  /** −exp(A_log), f32, computed once. */
  readonly A: Tensor;
  readonly dtBias: Tensor;
  /**
   * in_proj's output [z | x | B C | dt] and conv1d's channels [x | B C], each part projected (or convolved)
   * on its own: on long inputs, splitting one packed output would copy ~2·d_inner values per token.
   */
  readonly inProj: { z: Part; x: Part; bc: Part; dt: Part };
  readonly conv: { x: Part; bc: Part };

  constructor(
    readonly config: Mamba2Config,
    readonly w: Mamba2Weights,
  ) {
    const c = config;
    if (c.dInner % c.headDim)
      throw new ModelError(`Mamba-2: d_inner ${c.dInner} is not a multiple of headdim ${c.headDim}`);
    this.nHeads = c.dInner / c.headDim;
    if (this.nHeads % c.nGroups)
      throw new ModelError(`Mamba-2: ${this.nHeads} heads are not a multiple of ngroups ${c.nGroups}`);
    if (c.dInner % c.normGroupSize)
      throw new ModelError(`Mamba-2: norm group size ${c.normGroupSize} does not divide d_inner ${c.dInner}`);
    this.convDim = c.dInner + 2 * c.nGroups * c.dState;
    const A = ops.cast(w.A_log, 'f32');
    const expA = ops.exp(A);
    this.A = ops.scale(expA, -1);
    A.dispose();
    expA.dispose();
    this.dtBias = ops.cast(w.dt_bias, 'f32');
    const [dI, cd] = [c.dInner, this.convDim];
    const inBias = w.in_proj_bias;
    this.inProj = {
      z: rowsOf(w.in_proj, inBias, 0, dI),
      x: rowsOf(w.in_proj, inBias, dI, 2 * dI),
      bc: rowsOf(w.in_proj, inBias, 2 * dI, dI + cd),
      dt: rowsOf(w.in_proj, inBias, dI + cd, dI + cd + this.nHeads),
    };
    this.conv = {
      x: rowsOf(w.conv1d_weight, w.conv1d_bias, 0, dI),
      bc: rowsOf(w.conv1d_weight, w.conv1d_bias, dI, cd),
    };
  }

  /** A zero state for `batch` sequences. */
  initialState(batch = 1): Mamba2State {
    const backend = this.w.in_proj.backend;
    return {
      conv: ops.zeros(backend, [batch, this.config.dConv - 1, this.convDim], this.w.in_proj.dtype),
      ssm: ops.zeros(backend, [batch, this.nHeads, this.config.headDim, this.config.dState], 'f32'),
    };
  }

  /**
   * u [batch, len, dModel] → y [batch, len, dModel], continuing from `state` (zeros when null). Returns the
   * state after u; the given state is left untouched. `reverse` scans from the end (bidirectional models).
   */
  forward(
    u: Tensor,
    state: Mamba2State | null = null,
    opts: { reverse?: boolean } = {},
  ): { y: Tensor; state: Mamba2State } {
    const c = this.config;
    const [batch, len] = u.shape;
    return tidy(() => {
      const m = this.mixIn(opts.reverse ? ops.flip(u, 1) : u, state?.conv ?? null);
      const ssd = ops.ssdScan(
        {
          x: m.x.reshape([batch, len, this.nHeads, c.headDim]),
          dt: m.dt,
          A: this.A,
          B: m.B.reshape([batch, len, c.nGroups, c.dState]),
          C: m.C.reshape([batch, len, c.nGroups, c.dState]),
          D: this.w.D,
          state: state?.ssm ?? null,
        },
        c.chunkSize,
      );
      const out = this.output(ssd.y.reshape([batch, len, c.dInner]), m.z);
      return { y: opts.reverse ? ops.flip(out, 1) : out, state: { conv: m.conv, ssm: ssd.state } };
    });
  }

  /** One token: u [batch, dModel] → y [batch, dModel]; `state` is advanced in place. */
  step(u: Tensor, state: Mamba2State): Tensor {
    const c = this.config;
    const batch = u.shape[0];
    return tidy(() => {
      const m = this.mixIn(u.reshape([batch, 1, c.dModel]), state.conv);
      ops.writeSlice(state.conv, m.conv, 1, 0);
      const y = ops.ssmStep({
        x: m.x.reshape([batch, this.nHeads, c.headDim]),
        dt: m.dt.reshape([batch, this.nHeads]),
        A: this.A,
        B: m.B.reshape([batch, c.nGroups, c.dState]),
        C: m.C.reshape([batch, c.nGroups, c.dState]),
        D: this.w.D,
        state: state.ssm,
      });
      return this.output(y.reshape([batch, c.dInner]), m.z.reshape([batch, c.dInner]));
    });
  }

  /**
   * u [batch, len, dModel] → the SSD's inputs: z, silu(conv(x)), B and C (from silu(conv(B‖C))), dt (f32,
   * softplus'ed) and the conv state after u, [batch, d_conv − 1, convDim] as one tensor.
   */
  private mixIn(u: Tensor, convState: Tensor | null) {
    const c = this.config;
    const proj = (p: Part) => ops.linear(u, p.weight, p.bias);
    const gd = c.nGroups * c.dState;
    const [sx, sbc] = convState ? ops.split(convState, -1, [c.dInner, 2 * gd]) : [null, null];
    const cx = ops.conv1dCausal(proj(this.inProj.x), this.conv.x.weight, this.conv.x.bias, {
      state: sx,
      silu: true,
    });
    const cbc = ops.conv1dCausal(proj(this.inProj.bc), this.conv.bc.weight, this.conv.bc.bias, {
      state: sbc,
      silu: true,
    });
    const [B, C] = ops.split(cbc.y, -1, [gd, gd]);
    return {
      z: proj(this.inProj.z),
      x: cx.y,
      B,
      C,
      dt: this.timeStep(proj(this.inProj.dt)),
      conv: ops.concat([cx.state, cbc.state], -1),
    };
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

  /** Gate (and gated norm), then out_proj. */
  private output(y: Tensor, z: Tensor): Tensor {
    const c = this.config;
    const gated = c.rmsnorm
      ? ops.rmsNorm(y, this.w.norm_weight, {
          eps: c.normEps,
          gate: z,
          normBeforeGate: c.normBeforeGate,
          groupSize: c.normGroupSize,
        })
      : ops.mul(y, ops.silu(z));
    return ops.linear(gated, this.w.out_proj, this.w.out_proj_bias ?? null);
  }

  dispose(): void {
    this.A.dispose();
    this.dtBias.dispose();
    for (const p of [...Object.values(this.inProj), ...Object.values(this.conv)]) {
      p.weight.dispose();
      p.bias?.dispose();
    }
  }
}

/** Releases a state's tensors. */
export function disposeState(s: Mamba2State): void {
  s.conv.dispose();
  s.ssm.dispose();
}

/**
 * A pre-norm residual Mamba-2 block (mamba_ssm `Block` with residual_in_fp32 off): u + mixer(RMSNorm(u)).
 */
export class Mamba2Block {
  constructor(
    readonly normWeight: Tensor,
    readonly normEps: number,
    readonly mixer: Mamba2Mixer,
  ) {}

  /** One piece with the state carried in and out (see Mamba2Mixer.forward). */
  forward(u: Tensor, state: Mamba2State | null = null): { y: Tensor; state: Mamba2State } {
    return tidy(() => {
      const r = this.mixer.forward(ops.rmsNorm(u, this.normWeight, { eps: this.normEps }), state);
      return { y: ops.add(u, r.y), state: r.state };
    });
  }

  /**
   * The whole sequence u [batch, len, dModel], `chunkLen` tokens at a time with the state carried across
   * chunks: the result equals one `forward` (up to rounding) while the in_proj/SSD temporaries only ever hold
   * one chunk. With `inPlace` the result overwrites u (each chunk is read before it is written).
   */
  forwardChunked(u: Tensor, chunkLen: number, opts: { inPlace?: boolean } = {}): Tensor {
    const [batch, len, dModel] = u.shape;
    if (!(chunkLen >= 1)) throw new RangeError(`Mamba2Block: chunk length ${chunkLen} must be ≥ 1`);
    const out = opts.inPlace ? u : ops.empty(u.backend, [batch, len, dModel], u.dtype);
    let state: Mamba2State | null = null;
    try {
      for (let t0 = 0; t0 < len; t0 += chunkLen) {
        const prev: Mamba2State | null = state;
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
          const r = this.forward(piece, prev);
          ops.writeSlice(out, r.y, 1, t0);
          return r.state;
        });
        state = next;
        if (prev) disposeState(prev);
      }
    } catch (e) {
      if (out !== u) out.dispose();
      throw e;
    } finally {
      if (state) disposeState(state);
    }
    return out;
  }
}
