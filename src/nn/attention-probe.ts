/**
 * Where an answer looked: the attention mass that the last query of each forward pass (the query whose
 * logits choose the next answer token) puts on a span of keys, summed over heads, layers and steps. Vamba
 * records its cross-attention over the video tokens, Qwen2-VL its self-attention over the video span of the
 * prompt. The normal attention call is untouched: the probe recomputes the softmax row of that one query
 * (ops.attentionMass: a kernel of its own on CUDA, the attention op's weights elsewhere), so only a request
 * that asks for it pays, one row per layer.
 */
import * as ops from '../runtime/ops.js';
import { keep, tidy } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';

export class AttentionProbe implements Disposable {
  /** Mass per key of the span, f32 [to − from]; null until the first record. */
  private total: Tensor | null = null;

  /** Records keys [from, to) of every call (a Vamba video: 0 to its token count). */
  constructor(
    readonly from: number,
    readonly to: number,
  ) {
    if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from < to))
      throw new RangeError(`attention probe: bad key span [${from}, ${to})`);
  }

  /**
   * q [1, seq, hq, d] (rotated as the attention sees it), k [1, skv, hkv, d] of which the first `kvLength`
   * are valid: adds the softmax row of the last query over keys [from, to), summed over the heads. The last
   * query sees every valid key (it is the newest position), so no causal mask is needed.
   */
  record(q: Tensor, k: Tensor, kvLength = k.shape[1]): void {
    if (this.to > kvLength)
      throw new RangeError(`attention probe: span [${this.from}, ${this.to}) exceeds ${kvLength} keys`);
    const seq = q.shape[1];
    const hq = q.shape[2];
    const next = tidy(() => {
      const row = q.reshape([seq, hq, q.shape[3]]).narrow(seq - 1, seq);
      const mass = ops.attentionMass(row, k, { kvLength, from: this.from, to: this.to });
      return this.total ? ops.add(this.total, mass) : mass;
    });
    this.total?.dispose();
    this.total = keep(next);
  }

  /** The mass per key of the span so far (zeros before any record). */
  async read(): Promise<Float32Array> {
    if (!this.total) return new Float32Array(this.to - this.from);
    return Float32Array.from(await this.total.data());
  }

  [Symbol.dispose](): void {
    this.total?.dispose();
    this.total = null;
  }
}
