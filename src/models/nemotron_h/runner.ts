/**
 * Nemotron-H behind the facade: a text chat. Prompts come from the checkpoint's chat template (Nano-9B-v2's
 * reads `/think` and `/no_think` in the system prompt or a user turn and opens the answer with `<think>\n` or
 * an empty `<think></think>`), stop tokens from generation_config.json. The conversation before the last turn
 * (a system prompt, earlier turns) is prefilled once and kept as a HybridCache snapshot: a later question
 * whose prompt starts with it runs only its own tokens.
 */
import { UsageError } from '../../errors.js';
import type { Generation } from '../../facade/answer.js';
import { generateText } from '../../facade/text-generation.js';
import type { ChatTurn, DecodeCacheSize, GenerationOptions, ModelInfo } from '../../facade/types.js';
import { Tokenizer } from '../../io/tokenizer.js';
import { type CacheSnapshot, kvBytesPerToken } from '../../nn/cache.js';
import type { Backend } from '../../runtime/backend.js';
import { BYTES_PER_ELEMENT } from '../../runtime/dtype.js';
import { type CheckpointSource, type EncodedVideo, type ModelRunner, runnerInfo } from '../family.js';
import type { NemotronHConfig } from './config.js';
import { NemotronHForCausalLM, type NemotronHSession } from './model.js';
import { blockPeakBytes } from './size.js';

const TEXT_ONLY = 'Nemotron-H is a text model: ask without a video';

export async function loadNemotronHRunner(
  src: CheckpointSource<NemotronHConfig>,
  backend: Backend,
): Promise<ModelRunner> {
  const tokenizer = await Tokenizer.fromDir(src.dir);
  const model = await NemotronHForCausalLM.load(src.dir, { backend });
  const info: ModelInfo = {
    ...runnerInfo(
      'nemotron_h',
      src,
      { layers: src.config.hybrid_override_pattern.length, hiddenSize: src.config.hidden_size },
      { dtype: model.backbone.embeddings.dtype, device: backend.name },
    ),
    textOnly: true,
    reasoningBudget: true,
    decodeCache: decodeCacheOf(src.config, model),
  };
  return new NemotronHRunner(info, model, tokenizer);
}

/**
 * K/V of the attention blocks per token; conv + SSM state of the Mamba blocks per conversation. A prompt's
 * prefill: its embeddings and the widest block's working set with the stream beside it (`blockPeakBytes`,
 * three rows: NemotronHModel.forward adds a block's output in the next block's norm pass), per token as over
 * one Mamba chunk, plus one token's whole (a Mamba chunk's states: a prompt shorter than a chunk has one);
 * the last row's logits.
 */
function decodeCacheOf(c: NemotronHConfig, model: NemotronHForCausalLM): DecodeCacheSize {
  const dtype = model.backbone.embeddings.dtype;
  const b = BYTES_PER_ELEMENT[dtype];
  const layers = model.backbone.cacheLayers;
  const mamba = layers.filter((l) => l.kind === 'mamba').length;
  const dInner = c.mamba_num_heads * c.mamba_head_dim;
  const convDim = dInner + 2 * c.n_groups * c.ssm_state_size;
  const state = (c.conv_kernel - 1) * convDim * b + dInner * c.ssm_state_size * 4;
  const widest = (tokens: number) =>
    Math.max(...[...c.hybrid_override_pattern].map((kind) => blockPeakBytes(c, kind, tokens, 3, dtype)));
  return {
    bytesPerToken: kvBytesPerToken(layers, dtype),
    bytesPerSequence: mamba * state + widest(1),
    activationBytesPerToken: c.hidden_size * b + widest(c.chunk_size) / c.chunk_size,
    logitsBytes: c.vocab_size * (b + 4),
  };
}

/** A prefilled conversation head: its token ids and the cache after them. */
interface Prefix {
  ids: number[];
  snapshot: CacheSnapshot;
}

export class NemotronHRunner implements ModelRunner {
  /** The last conversation head prefilled (one: the usual case is one system prompt for many questions). */
  private prefix: Prefix | null = null;

  constructor(
    readonly info: ModelInfo,
    private readonly model: NemotronHForCausalLM,
    private readonly tokenizer: Tokenizer,
  ) {}

  async encode(): Promise<EncodedVideo> {
    throw new UsageError(TEXT_ONLY);
  }

  async *generate(
    turns: ChatTurn[],
    video: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation {
    if (video) throw new UsageError(TEXT_ONLY);
    if (!turns.length) throw new UsageError('a chat needs at least one message');
    const ids = this.promptIds(turns, true);
    const max = opts.maxNewTokens ?? 512;
    const budget = opts.reasoningBudget;
    const usage = (completionTokens: number) => ({
      promptTokens: ids.length,
      videoTokens: 0,
      completionTokens,
      totalTokens: ids.length + completionTokens,
    });
    if (budget === undefined) {
      const { completionTokens, finishReason } = yield* this.run(turns, ids, { ...opts, maxNewTokens: max });
      return { usage: usage(completionTokens), finishReason };
    }
    if (!(Number.isInteger(budget) && budget >= 1 && budget < max))
      throw new UsageError(
        `the reasoning budget must be an integer from 1 to max tokens − 1 (${max - 1}), got ${budget}`,
        'reasoningBudget',
      );
    // The model card's client: think up to the budget, close the thinking with `.\n</think>\n\n` unless it
    // closed itself, then continue the same assistant message for the rest of the tokens. (The client
    // re-renders the message through the chat template with continue_final_message; continuing the prompt
    // with the thinking's own tokens is what that amounts to, and needs nothing of the template.)
    const thinking = yield* this.run(turns, ids, { ...opts, maxNewTokens: budget });
    if (thinking.finishReason === 'stop')
      return { usage: usage(thinking.completionTokens), finishReason: 'stop' };
    const closeId = this.tokenizer.tokenToId('</think>');
    const closedItself = closeId === undefined ? false : thinking.tokens.includes(closeId);
    const close = closedItself ? [] : this.tokenizer.encode('.\n</think>\n\n', { addSpecialTokens: false });
    if (close.length) yield this.tokenizer.decode(close, { skipSpecialTokens: true });
    const thought = [...thinking.tokens, ...close];
    if (thought.length >= max) return { usage: usage(thought.length), finishReason: 'length' };
    const answer = yield* this.run(turns, [...ids, ...thought], {
      ...opts,
      maxNewTokens: max - thought.length,
    });
    return { usage: usage(thought.length + answer.completionTokens), finishReason: answer.finishReason };
  }

  /** Generates after the prompt `ids` (of `turns`, whose head is kept for later prompts). */
  private async *run(
    turns: ChatTurn[],
    ids: number[],
    opts: GenerationOptions & { signal?: AbortSignal; maxNewTokens: number },
  ) {
    const { session, input } = this.start(turns, ids, ids.length + opts.maxNewTokens);
    using _ = session;
    return yield* generateText(
      {
        session,
        input,
        promptIds: ids,
        tokenizer: this.tokenizer,
        generationConfig: this.model.generationConfig,
        eosTokenIds: this.model.stopTokens,
      },
      opts,
    );
  }

  /** A text model: the chat template's prompt for the turns (the `media` is refused by `generate`). */
  promptTokens(turns: readonly ChatTurn[]): number {
    return this.promptIds(turns, true).length;
  }

  private promptIds(turns: readonly ChatTurn[], addGenerationPrompt: boolean): number[] {
    const text = this.tokenizer.applyChatTemplate(
      turns.map((t) => ({ role: t.role, content: t.content })),
      { addGenerationPrompt },
    );
    return this.tokenizer.encode(text, { addSpecialTokens: false });
  }

  /**
   * A session for the prompt `ids` and what is left to prefill. This conversation's head (every turn but the
   * last) is prefilled and kept when the prompt starts with its rendering (a template may render a head
   * differently; then it is not kept); the session continues from the kept head when the prompt starts with it.
   */
  private start(
    turns: ChatTurn[],
    ids: number[],
    capacity: number,
  ): { session: NemotronHSession; input: number[] } {
    const head = turns.length > 1 ? this.promptIds(turns.slice(0, -1), false) : [];
    if (head.length && startsWith(ids, head) && !sameIds(head, this.prefix?.ids)) this.keep(head, capacity);
    const p = this.prefix && startsWith(ids, this.prefix.ids) ? this.prefix : null;
    if (!p) return { session: this.model.session({ capacity }), input: ids };
    return { session: this.model.session({ capacity, from: p.snapshot }), input: ids.slice(p.ids.length) };
  }

  /** Prefills `head` (after the kept prefix when it starts with it) and keeps it in place of the old one. */
  private keep(head: number[], capacity: number): void {
    const from = this.prefix && startsWith(head, this.prefix.ids) ? this.prefix : null;
    using session = this.model.session({ capacity, from: from?.snapshot });
    session.prefill(head.slice(from?.ids.length ?? 0)).dispose();
    const snapshot = session.cache.snapshot();
    this.prefix?.snapshot[Symbol.dispose]();
    this.prefix = { ids: head, snapshot };
  }

  dispose(): void {
    this.prefix?.snapshot[Symbol.dispose]();
    this.prefix = null;
    this.model[Symbol.dispose]();
  }
}

const sameIds = (a: readonly number[], b: readonly number[] | undefined): boolean =>
  b !== undefined && a.length === b.length && a.every((t, i) => b[i] === t);

/** Whether `ids` is `prefix` followed by at least one more token. */
const startsWith = (ids: readonly number[], prefix: readonly number[]): boolean =>
  ids.length > prefix.length && prefix.every((t, i) => ids[i] === t);
