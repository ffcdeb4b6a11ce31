/**
 * TimeViper behind the facade: frames → SigLIP → ToMe → projector once per video (the encoded state is the
 * projected tokens, 16 per frame); each question builds the nano_base prompt with one `<image>` per frame and
 * runs the LLM's prefill (drop stages included) and greedy decoding. Stop tokens as the official code: eos,
 * `<SPECIAL_12>` and `</s>`.
 */
import { ModelError, UsageError } from '../../errors.js';
import type { Generation } from '../../facade/answer.js';
import { massPerGroup } from '../../facade/relevance.js';
import { generateText } from '../../facade/text-generation.js';
import type { ChatTurn, GenerationOptions, ModelInfo } from '../../facade/types.js';
import { Tokenizer } from '../../io/tokenizer.js';
import type { Frame } from '../../media/decode.js';
import type { Backend } from '../../runtime/backend.js';
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import {
  type CheckpointSource,
  type EncodedVideo,
  type FrameBatchContext,
  type ModelRunner,
  runnerInfo,
} from '../family.js';
import { siglipPixels } from '../siglip/preprocess.js';
import type { TimeViperConfig } from './config.js';
import { TimeViperModel } from './model.js';
import { IMAGE_TOKEN, nanoBasePrompt } from './prompt.js';
import { tokenWorth } from './relevance.js';

interface TimeViperVideo extends EncodedVideo {
  visual: Tensor;
}

export async function loadTimeViperRunner(
  src: CheckpointSource<TimeViperConfig>,
  backend: Backend,
): Promise<ModelRunner> {
  const tokenizer = await Tokenizer.fromDir(src.dir);
  const image = tokenizer.tokenToId(IMAGE_TOKEN);
  // An official checkpoint's config leaves the placeholder to the tokenizer (−1).
  const config =
    src.config.imageTokenId < 0 && image !== undefined ? { ...src.config, imageTokenId: image } : src.config;
  if (image !== config.imageTokenId)
    throw new ModelError(
      `${src.dir}: the tokenizer's ${IMAGE_TOKEN} is ${image ?? 'missing'}, config.json's image_token_index ${config.imageTokenId}`,
    );
  const model = await TimeViperModel.load(src.dir, backend, backend.name === 'cpu' ? 'f32' : 'bf16', config);
  const info = runnerInfo(
    'timeviper',
    src,
    { layers: src.config.llm.hybrid_override_pattern.length, hiddenSize: src.config.llm.hidden_size },
    { dtype: model.lm.embeddings.dtype, device: backend.name },
  );
  const stops = [tokenizer.eosTokenId, tokenizer.tokenToId('<SPECIAL_12>'), tokenizer.tokenToId('</s>')];
  return new TimeViperRunner(info, model, tokenizer, [
    ...new Set(stops.filter((t) => t != null)),
  ] as number[]);
}

export class TimeViperRunner implements ModelRunner {
  constructor(
    readonly info: ModelInfo,
    private readonly model: TimeViperModel,
    private readonly tokenizer: Tokenizer,
    private readonly stops: number[],
  ) {}

  async encode(frames: AsyncIterable<Frame[]>, c: FrameBatchContext): Promise<EncodedVideo> {
    const size = this.model.config.vision.image_size;
    const parts: Tensor[] = [];
    let done = 0;
    try {
      for await (const batch of frames) {
        c.signal?.throwIfAborted();
        if (!batch.length) continue;
        using pixels = ops.tensor(this.model.lm.embeddings.backend, siglipPixels(batch, size), [
          batch.length,
          3,
          size,
          size,
        ]);
        parts.push(await this.model.encode(pixels));
        done += batch.length;
        c.onFrames?.(done, done * this.model.config.tokensPerFrame);
      }
      if (!parts.length) throw new UsageError('TimeViper: no frames to encode');
      const visual = parts.length === 1 ? parts.splice(0)[0] : ops.concat(parts, 0);
      const video: TimeViperVideo = {
        visual,
        tokens: visual.shape[0] * visual.shape[1],
        bytes: visual.bytes,
        dispose: () => visual.dispose(),
      };
      return video;
    } finally {
      for (const p of parts) p.dispose();
    }
  }

  async *generate(
    turns: ChatTurn[],
    encoded: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation {
    const visual = (encoded as TimeViperVideo | undefined)?.visual ?? null;
    const frames = visual?.shape[0] ?? 0;
    const { text, answerPrompt } = nanoBasePrompt(turns, frames);
    const ids = this.tokenizer.encode(text, { addSpecialTokens: false });
    if (answerPrompt) ids.push(...this.tokenizer.encode(answerPrompt, { addSpecialTokens: false }));
    const perFrame = this.model.config.tokensPerFrame;
    // Where the answer looked: which video tokens the drop stages kept, and where TransV moved the others.
    const relevance = Boolean(visual && opts.relevance);
    using session = this.model.session(
      ids.length + frames * (perFrame - 1) + (opts.maxNewTokens ?? 512),
      relevance,
    );
    const { completionTokens, finishReason } = yield* generateText(
      {
        session,
        input: { ids, visual },
        promptIds: ids,
        tokenizer: this.tokenizer,
        generationConfig: null,
        eosTokenIds: this.stops,
      },
      opts,
    );
    const promptTokens = ids.length - frames;
    const videoTokens = encoded?.tokens ?? 0;
    return {
      usage: {
        promptTokens,
        videoTokens,
        completionTokens,
        totalTokens: promptTokens + videoTokens + completionTokens,
      },
      finishReason,
      ...(relevance && {
        videoAttention: massPerGroup(
          tokenWorth(
            videoTokens,
            session.kept.map((kept, s) => ({ kept, transfer: session.transfer[s] ?? null })),
          ),
          frames,
        ),
      }),
    };
  }

  dispose(): void {
    this.model[Symbol.dispose]();
  }
}
