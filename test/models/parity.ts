/** Checks shared by the CPU model tests and the GPU ones (test-cuda/models.test.ts). */
import assert from 'node:assert/strict';
import { type GenerateOptions, generateAll } from '../../src/generate/generate.js';
import type { CausalLM } from '../../src/generate/types.js';
import type { Tensor } from '../../src/runtime/tensor.js';

/** Greedy generation through a session's KV cache, keeping every step's logits (prefill's last row first). */
export async function recordedGreedy<Input>(
  session: CausalLM<Input>,
  input: Input,
  opts: GenerateOptions,
): Promise<{ tokens: number[]; steps: Float32Array[] }> {
  const steps: Float32Array[] = [];
  const record = async (l: Tensor | Promise<Tensor>) => {
    const t = await l;
    steps.push(Float32Array.from(await t.data()));
    return t;
  };
  const out = await generateAll(
    { prefill: (x: Input) => record(session.prefill(x)), step: (tok: number) => record(session.step(tok)) },
    input,
    opts,
  );
  return { tokens: out.tokens, steps };
}

/** Logits of the prefill and of each step fed the given tokens (teacher forcing), concatenated. */
export async function teacherForcedLogits<Input>(
  session: { prefill(x: Input): Tensor; step(tok: number): Tensor },
  input: Input,
  tokens: readonly number[],
): Promise<number[]> {
  const all: number[] = [];
  let logits = session.prefill(input);
  for (const tok of tokens) {
    all.push(...(await logits.data()));
    logits.dispose();
    logits = session.step(tok);
  }
  logits.dispose();
  return all;
}

/**
 * Greedy decoding through a small KV cache (it has to grow) must give the reference's tokens, and every step's
 * logits must be within `tol` (max |Δ| / max |ref|) of the reference's `stepLogits` [steps, vocab].
 */
export async function assertGreedyMatches<Input>(
  session: CausalLM<Input> & Disposable,
  input: Input,
  opts: GenerateOptions,
  want: {
    tokens: readonly number[];
    stepLogits: ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> };
    vocab: number;
  },
  tol: number,
  relErr: (a: ArrayLike<number>, b: ArrayLike<number>) => number,
  label: string,
): Promise<void> {
  const { tokens, steps } = await recordedGreedy(session, input, opts);
  session[Symbol.dispose]();
  assert.deepEqual(tokens, want.tokens, `${label} greedy tokens`);
  steps.forEach((s, i) => {
    const e = relErr(s, want.stepLogits.subarray(i * want.vocab, (i + 1) * want.vocab));
    assert.ok(e <= tol, `${label} decode step ${i}: relative error ${e}`);
  });
}
