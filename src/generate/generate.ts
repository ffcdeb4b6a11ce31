/**
 * Autoregressive generation over any `CausalLM`: greedy or sampled (temperature, top-k, top-p, repetition
 * penalty, all applied by `ops.sample` on the model's backend with uniforms from a seeded RNG), stopping at a
 * stop token or after `maxNewTokens`, streaming each token with the text it completes.
 */
import { InputError } from '../errors.js';
import type { GenerationConfig } from '../io/generation-config.js';
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import { seededUniform } from '../util/random.js';
import { batcherFor } from './batch.js';
import type { CausalLM, TextStream } from './types.js';

export interface GenerateOptions {
  /** Default 256. */
  maxNewTokens?: number;
  /** false (default): greedy. */
  doSample?: boolean;
  temperature?: number;
  /** 0 disables (the default). */
  topK?: number;
  topP?: number;
  /** HF semantics over the prompt and generated ids; 1 disables. */
  repetitionPenalty?: number;
  seed?: number;
  /** Generation ends after emitting one of these ids. */
  stopTokens?: readonly number[];
  /** Prompt ids, needed for the repetition penalty. */
  promptIds?: ArrayLike<number>;
  /** Turns tokens into text pieces as they arrive. */
  decoder?: TextStream | null;
  signal?: AbortSignal;
  /**
   * Decode in one batch with the other generations of the same model (default true when the model can,
   * see `CausalLM.stepMany`); false steps alone.
   */
  batch?: boolean;
}

export interface GeneratedToken {
  token: number;
  /** Text this token completed (may be '' while a multi-byte character is incomplete). */
  text: string;
  /** Set on the last token: 'stop' (a stop token), 'length' (maxNewTokens) or 'abort'. */
  finishReason?: 'stop' | 'length' | 'abort';
}

/** Options from a checkpoint's generation_config.json, overridden by `overrides`. */
export function optionsFromGenerationConfig(
  g: GenerationConfig,
  overrides: GenerateOptions = {},
): GenerateOptions {
  return {
    maxNewTokens: g.max_new_tokens ?? undefined,
    doSample: g.do_sample,
    temperature: g.temperature,
    topK: g.top_k,
    topP: g.top_p,
    repetitionPenalty: g.repetition_penalty,
    stopTokens: g.eos_token_id,
    ...overrides,
  };
}

export async function* generate<Input>(
  lm: CausalLM<Input>,
  input: Input,
  opts: GenerateOptions = {},
): AsyncGenerator<GeneratedToken> {
  const maxNewTokens = opts.maxNewTokens ?? 256;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1)
    throw new InputError(`maxNewTokens must be a positive integer (got ${maxNewTokens})`);
  const temperature = opts.doSample ? (opts.temperature ?? 1) : 0;
  if (opts.doSample && !(temperature > 0))
    throw new InputError(`temperature must be > 0 when sampling (got ${temperature})`);
  const topP = opts.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new InputError(`topP must be in (0, 1] (got ${topP})`);
  const penalty = opts.repetitionPenalty ?? 1;
  if (!(penalty > 0)) throw new InputError(`repetitionPenalty must be positive (got ${penalty})`);
  const stop = new Set(opts.stopTokens ?? []);
  const uniform = seededUniform(opts.seed ?? 0);
  const seen = penalty !== 1 ? Array.from(opts.promptIds ?? [], Number) : [];

  const pick = async (logits: Tensor): Promise<number> => {
    const previous = seen.length
      ? ops.tensor(logits.backend, Int32Array.from(seen), [1, seen.length], 'i32')
      : null;
    const rows = logits.reshape([1, logits.size]);
    const f32 = rows.dtype === 'f32' ? rows : ops.cast(rows, 'f32');
    const out = ops.sample(f32, Float32Array.of(uniform()), {
      temperature,
      topK: opts.doSample ? (opts.topK ?? 0) : 0,
      topP: opts.doSample ? topP : 1,
      repetitionPenalty: penalty,
      previous,
    });
    try {
      return await out.item();
    } finally {
      for (const t of new Set([out, f32, rows, logits, previous])) t?.dispose();
    }
  };

  let token = await pick(await lm.prefill(input));
  const batcher = opts.batch !== false && lm.stepMany && lm.batchKey ? batcherFor(lm.batchKey) : null;
  const next = batcher
    ? (t: number) =>
        batcher.step(lm as CausalLM<unknown>, t, {
          temperature,
          topK: opts.doSample ? (opts.topK ?? 0) : 0,
          topP: opts.doSample ? topP : 1,
          repetitionPenalty: penalty,
          seen,
          uniform: uniform(),
        })
    : async (t: number) => pick(await lm.step(t));
  batcher?.join();
  try {
    for (let n = 1; ; n++) {
      if (penalty !== 1) seen.push(token);
      let text = opts.decoder ? opts.decoder.push(token) : '';
      const finishReason = stop.has(token)
        ? 'stop'
        : n >= maxNewTokens
          ? 'length'
          : opts.signal?.aborted
            ? 'abort'
            : undefined;
      if (finishReason) {
        if (opts.decoder) text += opts.decoder.flush();
        yield { token, text, finishReason };
        return;
      }
      yield { token, text };
      token = await next(token);
    }
  } finally {
    batcher?.leave();
  }
}

/** Runs `generate` to the end and returns the tokens and the text. */
export async function generateAll<Input>(
  lm: CausalLM<Input>,
  input: Input,
  opts: GenerateOptions = {},
): Promise<{ tokens: number[]; text: string; finishReason: GeneratedToken['finishReason'] }> {
  const tokens: number[] = [];
  let text = '';
  let finishReason: GeneratedToken['finishReason'];
  for await (const t of generate(lm, input, opts)) {
    tokens.push(t.token);
    text += t.text;
    finishReason = t.finishReason;
  }
  return { tokens, text, finishReason };
}
