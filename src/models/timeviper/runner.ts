/**
 * TimeViper behind the facade: frames → SigLIP → ToMe → projector once per video (the encoded state is the
 * projected tokens, 16 per frame); each question builds the nano_base prompt with one `<image>` per frame and
 * runs the LLM's prefill and greedy decoding. Stop tokens as the official code: eos, `<SPECIAL_12>` and `</s>`.
 *
 * Token reduction is the user's choice (models/reduction.ts): `transv` runs the checkpoint's pdrop_type stages
 * in the prefill (the official inference; offered when the checkpoint has them), `uniform` / `tome`
 * thin each frame's projected tokens; `none` (the default) gives every layer every token.
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
  type EncodeGeometry,
  type EncodePlan,
  type FrameBatchContext,
  type ModelRunner,
  runnerInfo,
} from '../family.js';
import { siglipPixelsOn } from '../siglip/preprocess.js';
import type { TimeViperConfig } from './config.js';
import { TimeViperModel } from './model.js';
import { stageCounts } from './pdrop.js';
import { IMAGE_TOKEN, nanoBasePrompt } from './prompt.js';
import { tokenWorth } from './relevance.js';
import { ENCODE_BATCH_FRAMES, timeViperMemory, timeViperQuestionCost } from './size.js';

interface TimeViperVideo extends EncodedVideo {
  /** Projected tokens [frames, perFrame, hidden] (perFrame < 16 after a uniform / ToMe reduction). */
  visual: Tensor;
  /** Whether the prefill runs the checkpoint's drop stages (`--reduce transv`). */
  drops: boolean;
}

/**
 * The reductions a TimeViper checkpoint takes: per-frame ones always; TransV when it was trained with drop stages
 * (their transfer weights are then loaded with it; drop-only stages need none).
 */
export function timeViperReductions(config: TimeViperConfig): string[] {
  return ['uniform', 'tome', ...(config.stages.length ? ['transv'] : [])];
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
  readonly reductions: readonly string[];

  constructor(
    readonly info: ModelInfo,
    private readonly model: TimeViperModel,
    private readonly tokenizer: Tokenizer,
    private readonly stops: number[],
  ) {
    this.reductions = timeViperReductions(model.config);
  }

  async encode(frames: AsyncIterable<Frame[]>, c: FrameBatchContext): Promise<EncodedVideo> {
    const size = this.model.config.vision.image_size;
    const parts: Tensor[] = [];
    let done = 0;
    try {
      for await (const decoded of frames) {
        c.signal?.throwIfAborted();
        // At most ENCODE_BATCH_FRAMES through the tower at a time, whatever the decoder's batches (size.ts).
        for (let i = 0; i < decoded.length; i += ENCODE_BATCH_FRAMES) {
          const batch = decoded.slice(i, i + ENCODE_BATCH_FRAMES);
          using pixels = siglipPixelsOn(this.model.lm.embeddings.backend, batch, size);
          parts.push(await this.model.encode(pixels));
          done += batch.length;
          c.onFrames?.(done, done * this.model.config.tokensPerFrame);
        }
      }
      if (!parts.length) throw new UsageError('TimeViper: no frames to encode');
      let visual = parts.length === 1 ? parts.splice(0)[0] : ops.concat(parts, 0);
      const chosen = c.reduction;
      const drops = chosen?.reduction.name === 'transv';
      if (chosen?.reduction.reduce) {
        const full = visual;
        try {
          const [frames, , width] = full.shape;
          using rows = (await chosen.reduction.reduce(full, chosen.keep)).tokens;
          visual = rows.reshape([frames, rows.shape[0] / frames, width]);
        } finally {
          full.dispose();
        }
      }
      const all = visual.shape[0] * visual.shape[1];
      // Under TransV the later layers hold what the last stage keeps: the count the user asked about.
      const stages = this.model.config.stages;
      const tokens = drops ? stageCounts(stages, stages.length - 1, all).keep : all;
      const video: TimeViperVideo = {
        visual,
        drops,
        tokens,
        bytes: visual.bytes,
        questionBytes: timeViperQuestionCost(
          this.model.config,
          { frames: visual.shape[0], perFrame: visual.shape[1], drops },
          visual.dtype,
        ),
        dispose: () => visual.dispose(),
      };
      return video;
    } finally {
      for (const p of parts) p.dispose();
    }
  }

  /**
   * The encode's memory and a question's (size.ts; frames are squashed to the tower's square, whatever their
   * size); a token reduction is not counted (every token, no drop stage: the most a question can take).
   */
  planEncode(g: EncodeGeometry): EncodePlan {
    const dtype = this.model.lm.embeddings.dtype;
    const m = timeViperMemory(this.model.config, { frames: g.frames, textTokens: 0, dtype });
    return {
      videoTokens: m.videoTokens,
      stateBytes: m.stateBytes,
      peakBytes: m.encodeBytes,
      questionBytes: timeViperQuestionCost(this.model.config, { frames: g.frames }, dtype),
    };
  }

  /**
   * The prompt's tokens less the video's: one frame's placeholder stands for the video (each placeholder is
   * one `<image>` token, whatever the frames).
   */
  promptTokens(turns: readonly ChatTurn[], media?: 'video' | 'image'): number {
    const frames = media ? 1 : 0;
    return this.promptIds(turns, frames).length - frames;
  }

  /** The NanoBase prompt's ids for `turns` with `frames` frame placeholders, its answer prompt after. */
  private promptIds(turns: readonly ChatTurn[], frames: number): number[] {
    const { text, answerPrompt } = nanoBasePrompt(turns, frames);
    const ids = this.tokenizer.encode(text, { addSpecialTokens: false });
    if (answerPrompt) ids.push(...this.tokenizer.encode(answerPrompt, { addSpecialTokens: false }));
    return ids;
  }

  async *generate(
    turns: ChatTurn[],
    encoded: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation {
    const video = encoded as TimeViperVideo | undefined;
    const visual = video?.visual ?? null;
    const frames = visual?.shape[0] ?? 0;
    const ids = this.promptIds(turns, frames);
    const perFrame = visual?.shape[1] ?? 0;
    const drops = video?.drops ?? false;
    // Where the answer looked: which video tokens the drop stages kept, and where TransV moved the others.
    const relevance = Boolean(visual && opts.relevance);
    using session = this.model.session(
      ids.length + frames * (perFrame - 1) + (opts.maxNewTokens ?? 512),
      drops,
      relevance && drops,
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
            frames * perFrame,
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
