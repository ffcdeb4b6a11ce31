/**
 * The generation loop both families share: facade options → `generate` options (temperature 0 = greedy;
 * unset values from the checkpoint's generation_config.json), text pieces out, token counts back.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { type GenerateOptions, generate, optionsFromGenerationConfig } from '../generate/generate.js';
import type { CausalLM } from '../generate/types.js';
import type { GenerationConfig } from '../io/generation-config.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { FinishReason, GenerationOptions, Usage } from './types.js';

export interface TextModel<Input> {
  session: CausalLM<Input>;
  input: Input;
  promptIds: ArrayLike<number>;
  tokenizer: Tokenizer;
  generationConfig: GenerationConfig | null;
  eosTokenIds: readonly number[];
}

export async function* generateText<Input>(
  m: TextModel<Input>,
  opts: GenerationOptions & { signal?: AbortSignal },
): AsyncGenerator<string, { completionTokens: number; tokens: number[]; finishReason: FinishReason }> {
  const base: GenerateOptions = m.generationConfig
    ? optionsFromGenerationConfig(m.generationConfig)
    : { stopTokens: m.eosTokenIds };
  const sampled = (opts.temperature ?? 0) > 0;
  const tokens: number[] = [];
  let finishReason: FinishReason = 'length';
  for await (const t of generate(m.session, m.input, {
    ...base,
    maxNewTokens: opts.maxNewTokens ?? 512,
    doSample: sampled,
    temperature: opts.temperature,
    topK: opts.topK ?? (sampled ? base.topK : 0),
    topP: opts.topP ?? (sampled ? base.topP : 1),
    repetitionPenalty: opts.repetitionPenalty ?? base.repetitionPenalty,
    seed: opts.seed,
    promptIds: m.promptIds,
    decoder: m.tokenizer.streamDecoder({ skipSpecialTokens: true }),
    signal: opts.signal,
  })) {
    tokens.push(t.token);
    // On the CPU every step computes synchronously: let I/O in between tokens (a server's other requests,
    // health checks, a client hanging up) instead of starving the event loop for the whole answer.
    await yieldToEventLoop();
    if (t.finishReason === 'abort') opts.signal?.throwIfAborted();
    if (t.finishReason) finishReason = t.finishReason === 'stop' ? 'stop' : 'length';
    if (t.text) yield t.text;
  }
  return { completionTokens: tokens.length, tokens, finishReason };
}

/** The usage of an answer whose prompt of `promptLength` tokens holds the video's `videoTokens` (Qwen2-VL, TSTAR). */
export function inSequenceUsage(promptLength: number, videoTokens: number, completionTokens: number): Usage {
  return {
    promptTokens: promptLength - videoTokens,
    videoTokens,
    completionTokens,
    totalTokens: promptLength + completionTokens,
  };
}
