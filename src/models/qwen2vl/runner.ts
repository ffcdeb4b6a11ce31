/**
 * Qwen2-VL behind the facade. The video is in the token sequence, so its encoding is the vision tower's
 * merged tokens (plus the grid for M-RoPE): asking again skips decoding, preprocessing and the vision tower,
 * while the prefill over the whole sequence runs per question. Images keep their patch rows. Prompts come from the checkpoint's chat template
 * with the video (or image) part in the first user turn, the pads expanded as the HF processor does.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, ModelError } from '../../errors.js';
import type { Generation } from '../../facade/answer.js';
import type { EncodedVideo, ModelRunner } from '../../facade/engine.js';
import type { ModelSummary } from '../../facade/inspect.js';
import { generateText } from '../../facade/text-generation.js';
import type { ChatTurn, GenerationOptions, ModelInfo, SamplingOptions } from '../../facade/types.js';
import type { ChatMessage, ContentPart } from '../../io/tokenizer.js';
import { Tokenizer } from '../../io/tokenizer.js';
import { type Size, vambaResize } from '../../media/index.js';
import type { Backend } from '../../runtime/backend.js';
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import { Qwen2VL } from './model.js';
import { parsePreprocessorConfig } from './preprocessor-config.js';
import { Qwen2VLProcessor, type RgbImage, tokenCount, type VisualBatch } from './processor.js';
import { streamVisionTokens } from './video-stream.js';

interface Qwen2VLVideo extends EncodedVideo {
  kind: 'video' | 'image';
  batch: VisualBatch;
  /** A video's merged vision tokens, encoded once (its patch rows are then dropped). */
  embeds: Tensor | null;
}

/** Frames preprocessed and encoded at a time (an even number: whole 2-frame groups). */
const FRAMES_PER_BATCH = 16;

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

export async function loadQwen2VLRunner(
  summary: ModelSummary,
  backend: Backend,
  id: string,
): Promise<ModelRunner> {
  const { dir } = summary;
  if (!(await exists(join(dir, 'tokenizer.json'))))
    throw new ModelError(
      `${dir}: no tokenizer.json; longshot needs the checkpoint's tokenizer to ask questions`,
    );
  const tokenizer = await Tokenizer.fromDir(dir);
  // Without its own preprocessor_config.json a checkpoint gets Qwen2-VL-7B-Instruct's pixel settings.
  const processor = (await exists(join(dir, 'preprocessor_config.json')))
    ? await Qwen2VLProcessor.load(dir)
    : new Qwen2VLProcessor(parsePreprocessorConfig({}, 'Qwen2-VL defaults'));
  const model = await Qwen2VL.load(dir, { backend });
  const t = summary.config.text;
  const info: ModelInfo = {
    id,
    dir,
    architecture: 'qwen2_vl',
    parameters: summary.parameters,
    weightBytes: summary.weightBytes,
    dtype: model.dtype,
    device: backend.name,
    layers: t.num_hidden_layers,
    hiddenSize: t.hidden_size,
  };
  return new Qwen2VLRunner(info, model, processor, tokenizer);
}

export class Qwen2VLRunner implements ModelRunner {
  /** qwen-vl-utils: 2 frames per second, at most 768. */
  readonly defaults: Required<SamplingOptions> = {
    sampling: 'fps',
    fps: 2,
    frames: 768,
    maxEdge: 640,
    minEdge: 28,
  };

  constructor(
    readonly info: ModelInfo,
    private readonly model: Qwen2VL,
    private readonly processor: Qwen2VLProcessor,
    private readonly tokenizer: Tokenizer,
  ) {}

  frameSize(source: Size, o: Required<SamplingOptions>): Size {
    return vambaResize(o.minEdge, o.maxEdge)(source); // smart_resize follows in the processor
  }

  async encode(
    frames: AsyncIterable<{ width: number; height: number; data: Uint8Array }[]>,
    timestampsSec: readonly number[],
    opts: { kind: 'video' | 'image'; signal?: AbortSignal; onFrames?: (done: number) => void },
  ): Promise<EncodedVideo> {
    if (opts.kind === 'video') return this.encodeVideoStream(frames, timestampsSec.length, opts);
    const all: RgbImage[] = [];
    for await (const batch of frames) {
      opts.signal?.throwIfAborted();
      all.push(...batch);
      opts.onFrames?.(all.length);
    }
    const batch = this.processor.processImages(all);
    const video: Qwen2VLVideo = {
      kind: 'image',
      batch,
      embeds: null,
      tokens: tokenCount(batch.grids[0], this.model.config.vision.spatial_merge_size),
      bytes: batch.pixelValues.byteLength,
      dispose: () => {},
    };
    return video;
  }

  /** A video's vision tokens, FRAMES_PER_BATCH frames at a time into one output (models/qwen2vl/video-stream.ts). */
  private async encodeVideoStream(
    frames: AsyncIterable<RgbImage[]>,
    expected: number,
    opts: { signal?: AbortSignal; onFrames?: (done: number) => void },
  ): Promise<EncodedVideo> {
    const r = await streamVisionTokens(frames, this.processor, {
      maxFrames: expected,
      framesPerBatch: FRAMES_PER_BATCH,
      oddLast: this.processor.options.oddFrames === 'drop' ? 'drop' : 'pad',
      encode: (pixels, g) => this.model.encodeVision(pixels, [g]),
      allocate: (g) => {
        this.model.assertVideoFits(g); // before anything is encoded
        const rows = (g[0] * g[1] * g[2]) / this.processor.video.merge_size ** 2;
        return ops.empty(this.model.backend, [rows, this.model.config.text.hidden_size], this.model.dtype);
      },
      signal: opts.signal,
      onFrames: opts.onFrames,
    });
    if (!r) throw new InputError('a video needs at least one frame');
    const { tokens, grid } = r;
    const video: Qwen2VLVideo = {
      kind: 'video',
      batch: { pixelValues: new Float32Array(0), grids: [grid] },
      embeds: tokens,
      tokens: tokens.shape[0],
      bytes: tokens.bytes,
      dispose: () => tokens.dispose(),
    };
    return video;
  }

  async *generate(
    turns: ChatTurn[],
    encoded: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation {
    const video = encoded as Qwen2VLVideo | undefined;
    const messages: ChatMessage[] = turns.map((t) => ({ role: t.role, content: t.content }));
    if (video) {
      const first = messages.findIndex((m) => m.role === 'user');
      const media: ContentPart = { type: video.kind };
      messages[first] = { role: 'user', content: [media, { type: 'text', text: turns[first].content }] };
    }
    let text = this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    if (video) text = this.processor.expandPads(text, { [video.kind]: video.batch.grids });
    const ids = this.tokenizer.encode(text, { addSpecialTokens: false });
    const inputs = {
      inputIds: ids,
      ...(video?.kind === 'image'
        ? { pixelValues: video.batch.pixelValues, imageGridThw: video.batch.grids }
        : video
          ? { videoEmbeds: video.embeds, videoGridThw: video.batch.grids }
          : {}),
    };
    using session = this.model.session({ capacity: ids.length + (opts.maxNewTokens ?? 512) });
    const { completionTokens, finishReason } = yield* generateText(
      {
        session,
        input: inputs,
        promptIds: ids,
        tokenizer: this.tokenizer,
        generationConfig: this.model.generationConfig,
        eosTokenIds: this.model.config.eos_token_id,
      },
      opts,
    );
    const videoTokens = video?.tokens ?? 0;
    return {
      usage: {
        promptTokens: ids.length - videoTokens,
        videoTokens,
        completionTokens,
        totalTokens: ids.length + completionTokens,
      },
      finishReason,
    };
  }

  dispose(): void {
    this.model[Symbol.dispose]();
  }
}
