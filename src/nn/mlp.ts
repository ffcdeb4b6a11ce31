import * as ops from '../runtime/ops.js';
import { tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import { type Activation, activation } from './activation.js';
import { Linear } from './linear.js';
import type { ParamSpec, ParamStore } from './params.js';

/** Gated MLP (SwiGLU for act = silu): down(act(gate(x)) · up(x)) — Qwen2MLP / LlamaMLP. */
export class GatedMLP implements Disposable {
  readonly act: Activation;
  /** SwiGLU: the gate's silu and the product in one pass. */
  readonly silu: boolean;

  constructor(
    readonly gate_proj: Linear,
    readonly up_proj: Linear,
    readonly down_proj: Linear,
    act = 'silu',
    /** gate_proj‖up_proj as one layer (they are views of it): a one-token step projects in one GEMM. */
    readonly gate_up: Linear | null = null,
  ) {
    this.act = activation(act);
    this.silu = act === 'silu';
  }

  static specs(prefix: string, hidden: number, intermediate: number, bias = false): ParamSpec[] {
    return [
      ...Linear.specs(`${prefix}.gate_proj`, hidden, intermediate, bias),
      ...Linear.specs(`${prefix}.up_proj`, hidden, intermediate, bias),
      ...Linear.specs(`${prefix}.down_proj`, intermediate, hidden, bias),
    ];
  }

  static load(p: ParamStore, prefix: string, act = 'silu', bias = false): GatedMLP {
    const gate = Linear.load(p, `${prefix}.gate_proj`, bias);
    const up = Linear.load(p, `${prefix}.up_proj`, bias);
    const down = Linear.load(p, `${prefix}.down_proj`, bias);
    const f = Linear.fuse([gate, up]);
    return f ? new GatedMLP(f.parts[0], f.parts[1], down, act, f.fused) : new GatedMLP(gate, up, down, act);
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const inter = this.gate_proj.outFeatures;
      // One token: gate‖up from one GEMM, the halves are rows of it.
      const gu =
        x.size === this.gate_proj.inFeatures && this.gate_up
          ? this.gate_up.forward(x).reshape([2, inter])
          : null;
      const gate = gu ? gu.narrow(0, 1).reshape([...x.shape.slice(0, -1), inter]) : this.gate_proj.forward(x);
      const up = gu ? gu.narrow(1, 2).reshape(gate.shape) : this.up_proj.forward(x);
      return this.down_proj.forward(this.silu ? ops.siluMul(gate, up) : ops.mul(this.act(gate), up));
    });
  }

  [Symbol.dispose](): void {
    for (const l of [this.gate_proj, this.up_proj, this.down_proj]) l[Symbol.dispose]();
    this.gate_up?.[Symbol.dispose]();
  }
}

/** Two-layer MLP: fc2(act(fc1(x))) — ViT blocks, projectors. */
export class MLP implements Disposable {
  readonly act: Activation;

  constructor(
    readonly fc1: Linear,
    readonly fc2: Linear,
    act: string,
  ) {
    this.act = activation(act);
  }

  static specs(
    prefix: string,
    inDim: number,
    hidden: number,
    outDim = inDim,
    names = ['fc1', 'fc2'],
    bias = true,
  ): ParamSpec[] {
    return [
      ...Linear.specs(`${prefix}.${names[0]}`, inDim, hidden, bias),
      ...Linear.specs(`${prefix}.${names[1]}`, hidden, outDim, bias),
    ];
  }

  static load(p: ParamStore, prefix: string, act: string, names = ['fc1', 'fc2'], bias = true): MLP {
    return new MLP(
      Linear.load(p, `${prefix}.${names[0]}`, bias),
      Linear.load(p, `${prefix}.${names[1]}`, bias),
      act,
    );
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(this.act(this.fc1.forward(x))));
  }

  [Symbol.dispose](): void {
    this.fc1[Symbol.dispose]();
    this.fc2[Symbol.dispose]();
  }
}
