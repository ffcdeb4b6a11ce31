/**
 * Qwen2-VL behind the facade. The video is in the token sequence, so its encoding is the vision tower's
 * merged tokens (plus the grid for M-RoPE) and the default prompt up to the end of the video, prefilled once:
 * a question in that prompt runs only its own tokens (another system prompt prefills the whole sequence).
 * Images keep their patch rows. Prompts come from the checkpoint's chat template with the video (or image)
 * part in the first user turn, the pads expanded as the HF processor does.
 */
import { InputError, ModelError } from '../../errors.js';
import type { Generation } from '../../facade/answer.js';
import { massPerGroup } from '../../facade/relevance.js';
import { generateText, inSequenceUsage } from '../../facade/text-generation.js';
import type { ChatTurn, GenerationOptions, ModelInfo } from '../../facade/types.js';
import { Checkpoint } from '../../io/checkpoint.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { saveSafetensors } from '../../io/safetensors-write.js';
import type { ChatMessage } from '../../io/tokenizer.js';
import { Tokenizer } from '../../io/tokenizer.js';
import { AttentionProbe } from '../../nn/attention-probe.js';
import type { Backend } from '../../runtime/backend.js';
import * as ops from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import {
  type CheckpointSource,
  type EncodedVideo,
  type EncodeGeometry,
  type EncodePlan,
  type FrameBatchContext,
  type LiveContext,
  type LiveEncoding,
  type ModelRunner,
  type Pieces,
  runnerInfo,
  type SavedVideo,
} from '../family.js';
import { modelIdentity } from '../identity.js';
import { tokenReductions } from '../reduction.js';
import type { Qwen2VLConfig } from './config.js';
import { Qwen2VLLiveVideo } from './live.js';
import { Qwen2VL, type Qwen2VLPrefix } from './model.js';
import {
  checkpointProcessor,
  type Qwen2VLProcessor,
  type RgbImage,
  tokenCount,
  VIDEO_PAD,
  type VisualBatch,
} from './processor.js';
import { decodeCacheOf, qwen2vlEncodePlan, qwen2vlQuestionCost, videoGrid } from './size.js';
import { streamVisionTokens } from './video-stream.js';
import type { GridTHW } from './vision.js';

export interface Qwen2VLVideo extends EncodedVideo {
  kind: 'video' | 'image';
  batch: VisualBatch;
  /** A video's merged vision tokens, encoded once (its patch rows are then dropped); a live video keeps none. */
  embeds: Tensor | null;
  /** A video's default prompt up to the end of the video, prefilled once. */
  prefix?: Qwen2VLPrefix;
  /** A reduced video: for each row of `embeds`, the grid token it stands for (models/reduction.ts); absent: none. */
  rows?: number[] | null;
}

/** The default prompt's conversation: one empty question (the video goes before it). */
const DEFAULT_TURNS: readonly ChatTurn[] = [{ role: 'user', content: '' }];

/** Tokens reserved after a video's prefix for a question and its answer, written without copying the prefix. */
const PREFIX_ROOM = 2048;

/** Frames preprocessed and encoded at a time (an even number: whole 2-frame groups). */
const FRAMES_PER_BATCH = 16;

export async function loadQwen2VLRunner(
  src: CheckpointSource<Qwen2VLConfig>,
  backend: Backend,
): Promise<ModelRunner> {
  const tokenizer = await Tokenizer.fromDir(src.dir);
  const processor = await checkpointProcessor(src.dir, src.config.vision);
  const model = await Qwen2VL.load(src.dir, { backend });
  const checkpoint = await Checkpoint.open(src.dir);
  const modelId = await modelIdentity(src.dir, checkpoint).finally(() => checkpoint.close());
  const t = src.config.text;
  const info: ModelInfo = {
    ...runnerInfo(
      'qwen2_vl',
      src,
      { layers: t.num_hidden_layers, hiddenSize: t.hidden_size },
      { dtype: model.dtype, device: backend.name },
    ),
    decodeCache: decodeCacheOf(t, model.dtype),
  };
  return new Qwen2VLRunner(info, model, processor, tokenizer, modelId);
}

/** A saved video: its merged vision tokens (`video_embeds`), the grid, and what made them, in the metadata. */
const FORMAT = 'longshot-qwen2vl-video/1';

export class Qwen2VLRunner implements ModelRunner {
  /** Reductions that run on the merged tokens (uniform, and ToMe once the build has it). */
  readonly reductions = tokenReductions()
    .filter((r) => r.reduce && !r.onlyFor)
    .map((r) => r.name);

  constructor(
    readonly info: ModelInfo,
    private readonly model: Qwen2VL,
    private readonly processor: Qwen2VLProcessor,
    private readonly tokenizer: Tokenizer,
    /** The checkpoint's identity (models/identity.ts), recorded in saved videos. */
    private readonly modelId: string,
  ) {}

  async encode(frames: AsyncIterable<RgbImage[]>, opts: FrameBatchContext): Promise<EncodedVideo> {
    if (opts.kind === 'video') return this.encodeVideoStream(frames, opts.timestampsSec.length, opts);
    if (opts.reduction)
      throw new InputError('a token reduction applies to videos; ask about the image without one');
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
      rows: null,
      tokens: tokenCount(batch.grids[0], this.model.config.vision.spatial_merge_size),
      bytes: batch.pixelValues.byteLength,
      questionBytes: this.imageQuestionCost(batch.grids[0]),
      dispose: () => {},
    };
    return video;
  }

  /** A question about an image of this patch grid: its tower and prefill run again for every question (size.ts). */
  private imageQuestionCost(grid: GridTHW) {
    const videoTokens = tokenCount(grid, this.model.config.vision.spatial_merge_size);
    const imagePatches = grid[0] * grid[1] * grid[2];
    return qwen2vlQuestionCost(
      this.model.config,
      { videoTokens, prefixTokens: 0, imagePatches },
      () => false,
      this.model.dtype,
    );
  }

  /** A video's tokens and prefix as `encode` makes them (size.ts `qwen2vlEncodePlan`); an image's pixels only. */
  planEncode(g: EncodeGeometry): EncodePlan {
    const c = this.processor.video;
    const grid = videoGrid(c, g.frames, g.width, g.height, this.processor.options.oddFrames ?? 'pad');
    if (g.kind === 'image') {
      const bytes = grid[1] * grid[2] * c.temporal_patch_size * 3 * c.patch_size ** 2 * 4;
      return {
        videoTokens: tokenCount([1, grid[1], grid[2]], c.merge_size),
        stateBytes: bytes,
        peakBytes: bytes,
        questionBytes: this.imageQuestionCost([1, grid[1], grid[2]]),
      };
    }
    return qwen2vlEncodePlan(this.model.config, {
      grid,
      prefixTextTokens: this.defaultPromptIds().length,
      room: PREFIX_ROOM,
      framesPerBatch: FRAMES_PER_BATCH,
      pieceTokens: g.pieceTokens,
      continues: (turns) => this.continuesPrefix(turns),
      dtype: this.model.dtype,
    });
  }

  /** A growing video whose questions are asked in the default prompt (see live.ts). */
  live(context: LiveContext): LiveEncoding {
    this.model.assertTakes('video');
    const ids = this.defaultPromptIds();
    const first = ids.indexOf(this.model.config.video_token_id);
    if (first < 0)
      throw new ModelError(
        `${this.info.id}: the chat template drops the video, so it cannot watch a live one`,
      );
    return new Qwen2VLLiveVideo(this.model, this.processor, ids.slice(0, first), context);
  }

  /** A video's vision tokens, FRAMES_PER_BATCH frames at a time into one output (models/qwen2vl/video-stream.ts). */
  private async encodeVideoStream(
    frames: AsyncIterable<RgbImage[]>,
    expected: number,
    opts: Pick<FrameBatchContext, 'signal' | 'onFrames' | 'reduction' | 'pieces'>,
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
      pieces: opts.pieces,
      onFrames: opts.onFrames,
    });
    if (!r) throw new InputError('a video needs at least one frame');
    if (!opts.reduction?.reduction.reduce) return this.videoOf(r.tokens, r.grid, null, opts.pieces);
    const [t, h, w] = r.grid;
    const perGroup = (h * w) / this.processor.video.merge_size ** 2;
    const grouped = r.tokens.reshape([t, perGroup, r.tokens.shape[1]]);
    try {
      const reduced = await opts.reduction.reduction.reduce(grouped, opts.reduction.keep);
      return await this.videoOf(
        reduced.tokens,
        r.grid,
        reduced.source.map((s) => s[0]),
        opts.pieces,
      );
    } finally {
      grouped.dispose();
      r.tokens.dispose();
    }
  }

  /**
   * A video from its vision tokens (which it owns from here), with the default prompt's prefix prefilled (in
   * pieces when given).
   */
  private async videoOf(
    tokens: Tensor,
    grid: GridTHW,
    rows: number[] | null,
    pieces?: Pieces,
  ): Promise<Qwen2VLVideo> {
    let prefix: Qwen2VLPrefix | undefined;
    try {
      prefix = await this.prefillVideoPrefix(tokens, grid, rows, pieces);
    } catch (e) {
      tokens.dispose();
      throw e;
    }
    return {
      kind: 'video',
      batch: { pixelValues: new Float32Array(0), grids: [grid] },
      embeds: tokens,
      prefix,
      rows,
      tokens: tokens.shape[0],
      bytes: tokens.bytes + (prefix?.bytes ?? 0),
      ...(prefix && {
        questionBytes: qwen2vlQuestionCost(
          this.model.config,
          { videoTokens: tokens.shape[0], prefixTokens: prefix.length },
          (turns) => this.continuesPrefix(turns),
          this.model.dtype,
        ),
      }),
      dispose: () => {
        tokens.dispose();
        prefix?.[Symbol.dispose]();
      },
    };
  }

  /** Saves a video's vision tokens and grid; the prefix is prefilled again from them on loading. */
  async saveVideo(encoded: EncodedVideo, path: string, metadata: Record<string, string>): Promise<void> {
    const video = encoded as Qwen2VLVideo;
    if (!video.embeds)
      throw new InputError('Qwen2-VL saves encoded videos, not images: ask about the image itself');
    if (video.rows)
      throw new InputError('a video encoded with a token reduction is not saved; encode it without one');
    await saveSafetensors(path, [['video_embeds', video.embeds]], {
      metadata: {
        ...metadata,
        format: FORMAT,
        model: this.modelId,
        dtype: this.model.dtype,
        grid: JSON.stringify(video.batch.grids[0]),
      },
    });
  }

  /** Refuses a file from another checkpoint or runtime dtype (the facade checks the sampling). */
  async loadVideo(path: string): Promise<SavedVideo> {
    const f = await SafetensorsFile.open(path);
    try {
      const { format, model, dtype, grid, ...metadata } = f.metadata;
      if (format !== FORMAT)
        throw new InputError(
          `${path} is not a saved Qwen2-VL video (format ${JSON.stringify(format ?? null)}, expected "${FORMAT}")`,
        );
      const diff = [
        model !== this.modelId && 'another checkpoint',
        dtype !== this.model.dtype && `dtype ${dtype} (this model runs ${this.model.dtype})`,
      ].filter(Boolean);
      if (diff.length)
        throw new InputError(
          `${path} was encoded with other settings (${diff.join(', ')}), so it cannot answer here; encode the video again`,
        );
      const tokens = await f.loadTensor(this.model.backend, 'video_embeds', { dtype: this.model.dtype });
      return { video: await this.videoOf(tokens, JSON.parse(grid) as GridTHW, null), metadata };
    } finally {
      await f.close();
    }
  }

  /**
   * The chat template's default prompt (its own system turn) up to the end of the video, prefilled; none when
   * the template drops the video.
   */
  private async prefillVideoPrefix(
    embeds: Tensor,
    grid: GridTHW,
    rows: number[] | null,
    pieces?: Pieces,
  ): Promise<Qwen2VLPrefix | undefined> {
    const { video_token_id: pad, vision_end_token_id: end } = this.model.config;
    const ids = shrinkPads(this.defaultPromptIds(grid), pad, rows);
    const cut = ids.lastIndexOf(pad) + 1;
    if (!cut) return undefined;
    const inputs = {
      inputIds: ids.slice(0, ids[cut] === end ? cut + 1 : cut),
      videoEmbeds: embeds,
      videoGridThw: [grid],
      videoRows: rows,
    };
    return pieces
      ? this.model.prefillPrefixInPieces(inputs, { room: PREFIX_ROOM, pieces })
      : this.model.prefillPrefix(inputs, { room: PREFIX_ROOM });
  }

  /** The default prompt's ids (the template's own system turn, a video, an empty question); pads expanded for `grid`. */
  private defaultPromptIds(grid?: GridTHW): number[] {
    const text = this.promptText(DEFAULT_TURNS, 'video');
    return this.tokenizer.encode(grid ? this.processor.expandPads(text, { video: [grid] }) : text, {
      addSpecialTokens: false,
    });
  }

  /** The chat template's prompt for `turns`, the media (when given) first in the first user turn; pads not expanded. */
  private promptText(turns: readonly ChatTurn[], media?: 'video' | 'image'): string {
    const messages: ChatMessage[] = turns.map((t) => ({ role: t.role, content: t.content }));
    if (media) {
      const first = messages.findIndex((m) => m.role === 'user');
      messages[first] = {
        role: 'user',
        content: [{ type: media }, { type: 'text', text: turns[first].content }],
      };
    }
    return this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  }

  /**
   * Whether a question about a video continues the video's prefilled prefix (the default prompt up to the
   * video), compared as text before the pads are expanded (what `Qwen2VLPrefix.continues` then finds in ids).
   */
  private continuesPrefix(turns: readonly ChatTurn[]): boolean {
    const reference = this.promptText(DEFAULT_TURNS, 'video');
    const end = reference.indexOf(VIDEO_PAD) + VIDEO_PAD.length;
    return end >= VIDEO_PAD.length && this.promptText(turns, 'video').startsWith(reference.slice(0, end));
  }

  /**
   * The prompt's tokens less the video's (or image's): its pads, one before they are expanded, are not
   * counted, as the usage does not count the video's tokens.
   */
  promptTokens(turns: readonly ChatTurn[], media?: 'video' | 'image'): number {
    const ids = this.tokenizer.encode(this.promptText(turns, media), { addSpecialTokens: false });
    const { video_token_id: video, image_token_id: image } = this.model.config;
    return ids.filter((id) => id !== video && id !== image).length;
  }

  async *generate(
    turns: ChatTurn[],
    encoded: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation {
    const video = encoded as Qwen2VLVideo | undefined;
    let text = this.promptText(turns, video?.kind);
    if (video) text = this.processor.expandPads(text, { [video.kind]: video.batch.grids });
    const ids = shrinkPads(
      this.tokenizer.encode(text, { addSpecialTokens: false }),
      this.model.config.video_token_id,
      video?.rows ?? null,
    );
    const inputs = {
      inputIds: ids,
      ...(video?.kind === 'image'
        ? { pixelValues: video.batch.pixelValues, imageGridThw: video.batch.grids }
        : video
          ? { videoEmbeds: video.embeds, videoGridThw: video.batch.grids, videoRows: video.rows }
          : {}),
    };
    const prefix = video?.prefix?.continues(ids) ? video.prefix : null;
    if (video?.kind === 'video' && !video.embeds && !prefix)
      throw new InputError(
        'a live video is asked about in the default prompt: send the question without a system message, the video in the first user message',
      );
    using probe = video && opts.relevance ? this.videoSpanProbe(ids, video.kind) : undefined;
    using session = this.model.session({
      capacity: ids.length + (opts.maxNewTokens ?? 512),
      prefix,
      probe,
    });
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
    return {
      usage: inSequenceUsage(ids.length, video?.tokens ?? 0, completionTokens),
      finishReason,
      ...(probe && { videoAttention: massPerGroup(await probe.read(), video!.batch.grids[0][0]) }),
    };
  }

  /** Where the answer looked: every layer's self-attention over the prompt's run of video (or image) pads. */
  private videoSpanProbe(ids: ArrayLike<number>, kind: 'video' | 'image'): AttentionProbe {
    const pad = kind === 'video' ? this.model.config.video_token_id : this.model.config.image_token_id;
    const at = Array.from(ids);
    return new AttentionProbe(at.indexOf(pad), at.lastIndexOf(pad) + 1);
  }

  dispose(): void {
    this.model[Symbol.dispose]();
  }
}

/** The prompt with its video's run of pads cut to a reduced video's row count (unchanged without one). */
function shrinkPads(ids: number[], pad: number, rows: readonly number[] | null): number[] {
  const at = ids.indexOf(pad);
  if (!rows || at < 0) return ids;
  let end = at;
  while (ids[end] === pad) end++;
  return [...ids.slice(0, at + rows.length), ...ids.slice(end)];
}
