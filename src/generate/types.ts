import type { Tensor } from '../runtime/tensor.js';

/**
 * What `generate` needs from a model: run a prompt (any input type: token ids, ids + pixels…) and return
 * the logits [1, vocab] of its last position, then extend by one token at a time. Implementations keep
 * their own caches (KV, Mamba state). The returned tensors belong to the caller.
 */
export interface CausalLM<Input> {
  prefill(input: Input): Tensor | Promise<Tensor>;
  step(token: number): Tensor | Promise<Tensor>;
  /**
   * Optional batched decoding: one token for each of `sessions` (this one among them, all sharing this
   * session's `batchKey`, i.e. its model) in one forward; logits [sessions.length, vocab] f32, row i equal to
   * what sessions[i].step(tokens[i]) returns.
   */
  stepMany?(sessions: readonly CausalLM<Input>[], tokens: readonly number[]): Tensor;
  /** Which sessions may step together (set with `stepMany`). */
  readonly batchKey?: object;
}

/** Incremental detokeniser (io's StreamDecoder fits): text completed by the pushed ids. */
export interface TextStream {
  push(...ids: number[]): string;
  flush(): string;
}
