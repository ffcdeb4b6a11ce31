/**
 * TSTAR behind the facade. Encoding a video streams its frames through the vision tower, 16 frames at a time
 * (Qwen2-VL's processor and tower; or SigLIP's square resize and tower), and compresses the whole clip once; the
 * compressed tokens are the per-video state. A prompt is the checkpoint's chat template with the video in the first user turn; its one video
 * placeholder is expanded to the compressed tokens' count. An image is a one-frame video.
 */
import { InputError } from '../../errors.js';
import type { Generation } from '../../facade/answer.js';
import { generateText, inSequenceUsage } from '../../facade/text-generation.js';
import type { ChatTurn, GenerationOptions, ModelInfo } from '../../facade/types.js';
import type { ChatMessage } from '../../io/tokenizer.js';
import { Tokenizer } from '../../io/tokenizer.js';
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
import { checkpointProcessor, type Qwen2VLProcessor, type RgbImage } from '../qwen2vl/processor.js';
import { streamVisionTokens } from '../qwen2vl/video-stream.js';
import { tokenReductions } from '../reduction.js';
import { siglipPixelsOn } from '../siglip/preprocess.js';
import type { TstarConfig } from './config.js';
import { Tstar } from './model.js';
import { ENCODE_BATCH_FRAMES, tstarEncodePlan, tstarQuestionCost } from './size.js';

interface TstarVideo extends EncodedVideo {
  /** The compressed tokens [n, LLM width]. */
  embeds: Tensor;
}

export async function loadTstarRunner(
  src: CheckpointSource<TstarConfig>,
  backend: Backend,
): Promise<ModelRunner> {
  const tokenizer = await Tokenizer.fromDir(src.dir);
  const v = src.config.vision;
  const processor = v.kind === 'qwen2_vl' ? await checkpointProcessor(src.dir, v.config) : null;
  const model = await Tstar.load(src.dir, backend, backend.name === 'cpu' ? 'f32' : 'bf16');
  const info = runnerInfo(
    'tstar',
    src,
    { layers: src.config.num_hidden_layers, hiddenSize: src.config.hidden_size },
    { dtype: model.dtype, device: backend.name },
  );
  return new TstarRunner(info, model, processor, tokenizer);
}

export class TstarRunner implements ModelRunner {
  /** Its own compressor, and the reductions that run on tokens (applied to the compressed ones). */
  readonly reductions = [
    'mambamia',
    ...tokenReductions()
      .filter((r) => r.reduce && !r.onlyFor)
      .map((r) => r.name),
  ];

  constructor(
    readonly info: ModelInfo,
    private readonly model: Tstar,
    /** Qwen2-VL's processor (null for a SigLIP tower, which squashes frames to its square input). */
    private readonly processor: Qwen2VLProcessor | null,
    private readonly tokenizer: Tokenizer,
  ) {}

  async encode(frames: AsyncIterable<RgbImage[]>, ctx: FrameBatchContext): Promise<EncodedVideo> {
    let embeds = this.processor
      ? await this.compressQwen2VL(frames, ctx, this.processor)
      : await this.compressSiglip(frames, ctx);
    const reduce = ctx.reduction?.reduction.reduce;
    if (reduce) {
      // The compressed tokens as one frame: they no longer map to frames one by one.
      const compressed = embeds;
      const all = compressed.reshape([1, compressed.shape[0], compressed.shape[1]]);
      try {
        embeds = (await reduce(all, ctx.reduction!.keep)).tokens;
      } finally {
        all.dispose();
        compressed.dispose();
      }
    }
    const video: TstarVideo = {
      embeds,
      tokens: embeds.shape[0],
      bytes: embeds.bytes,
      questionBytes: tstarQuestionCost(this.model.config, embeds.shape[0], this.model.dtype),
      dispose: () => embeds.dispose(),
    };
    return video;
  }

  /** Qwen2-VL's tower: the clip's merged tokens per 2-frame group, compressed. */
  private async compressQwen2VL(
    frames: AsyncIterable<RgbImage[]>,
    ctx: FrameBatchContext,
    processor: Qwen2VLProcessor,
  ): Promise<Tensor> {
    const m = this.model;
    const r = await streamVisionTokens(frames, processor, {
      maxFrames: ctx.kind === 'image' ? 1 : ctx.timestampsSec.length,
      framesPerBatch: ENCODE_BATCH_FRAMES,
      oddLast: 'pad',
      encode: (pixels, g) => m.encodeVision(pixels, g),
      allocate: (g) => {
        const rows = (g[0] * g[1] * g[2]) / processor.video.merge_size ** 2;
        return ops.empty(m.backend, [rows, m.config.vision.width], m.dtype);
      },
      signal: ctx.signal,
      onFrames: ctx.onFrames,
    });
    if (!r) throw new InputError('a video needs at least one frame');
    try {
      return m.compress(r.tokens, r.grid);
    } finally {
      r.tokens.dispose();
    }
  }

  /** SigLIP's tower: each frame squashed to its square input, its patches one group, the clip compressed. */
  private async compressSiglip(frames: AsyncIterable<RgbImage[]>, ctx: FrameBatchContext): Promise<Tensor> {
    const m = this.model;
    const v = m.config.vision;
    if (v.kind !== 'siglip') throw new InputError('TSTAR: a Qwen2-VL tower needs its processor');
    const size = v.config.image_size;
    const parts: Tensor[] = [];
    let done = 0;
    // ENCODE_BATCH_FRAMES frames a tower call, whatever the decoder's batches (size.ts plans by it).
    const run = (some: RgbImage[]) => {
      using pixels = siglipPixelsOn(m.backend, some, size);
      parts.push(m.encodeFrames(pixels));
      done += some.length;
      ctx.onFrames?.(done);
    };
    try {
      const pending: RgbImage[] = [];
      for await (const batch of frames) {
        ctx.signal?.throwIfAborted();
        pending.push(...batch);
        while (pending.length >= ENCODE_BATCH_FRAMES) run(pending.splice(0, ENCODE_BATCH_FRAMES));
      }
      if (pending.length) run(pending);
      if (!parts.length) throw new InputError('a video needs at least one frame');
      using all = parts.length === 1 ? parts.splice(0)[0] : ops.concat(parts, 0);
      return m.compressGroups(all);
    } finally {
      for (const p of parts) p.dispose();
    }
  }

  /** The encode's memory and a question's (size.ts); a token reduction is not counted. */
  planEncode(g: EncodeGeometry): EncodePlan {
    const bounds = this.processor?.video;
    return tstarEncodePlan(this.model.config, {
      frames: g.frames,
      width: g.width,
      height: g.height,
      minPixels: bounds?.min_pixels ?? 0,
      maxPixels: bounds?.max_pixels ?? Number.POSITIVE_INFINITY,
      dtype: this.model.dtype,
    });
  }

  async *generate(
    turns: ChatTurn[],
    encoded: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation {
    const video = encoded as TstarVideo | undefined;
    const ids = this.expandVideo(this.promptIds(turns, Boolean(video)), video?.tokens ?? 0);
    using session = this.model.session(ids.length + (opts.maxNewTokens ?? 512));
    const { completionTokens, finishReason } = yield* generateText(
      {
        session,
        input: { ids, video: video?.embeds ?? null },
        promptIds: ids,
        tokenizer: this.tokenizer,
        generationConfig: this.model.generationConfig,
        eosTokenIds: this.model.config.eos_token_id,
      },
      opts,
    );
    return {
      usage: inSequenceUsage(ids.length, video?.tokens ?? 0, completionTokens),
      finishReason,
    };
  }

  /** The prompt's tokens less the video's one placeholder (which `generate` repeats for every video token). */
  promptTokens(turns: readonly ChatTurn[], media?: 'video' | 'image'): number {
    return this.promptIds(turns, Boolean(media)).length - (media ? 1 : 0);
  }

  /** The chat template's prompt for `turns`, a video placeholder first in the first user turn `withVideo`. */
  private promptIds(turns: readonly ChatTurn[], withVideo: boolean): number[] {
    const messages: ChatMessage[] = turns.map((t) => ({ role: t.role, content: t.content }));
    if (withVideo) {
      const first = messages.findIndex((msg) => msg.role === 'user');
      messages[first] = {
        role: 'user',
        content: [{ type: 'video' }, { type: 'text', text: turns[first].content }],
      };
    }
    const text = this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    return this.tokenizer.encode(text, { addSpecialTokens: false });
  }

  /** The prompt with its one video placeholder repeated `count` times (none without a video). */
  private expandVideo(ids: number[], count: number): number[] {
    const pad = this.model.config.video_token_id;
    const at = ids.indexOf(pad);
    if (!count) return ids;
    if (at < 0 || ids.lastIndexOf(pad) !== at)
      throw new InputError(
        `the chat template gave ${at < 0 ? 'no' : 'more than one'} video placeholder (token ${pad}); TSTAR needs exactly one`,
      );
    return [...ids.slice(0, at), ...new Array<number>(count).fill(pad), ...ids.slice(at + 1)];
  }

  dispose(): void {
    this.model[Symbol.dispose]();
  }
}
