/**
 * Vamba behind the facade. Frames (sampled and decoded by the facade with Vamba's policy) are patched and
 * encoded into a handle holding every layer's cross-attention K/V (video.ts), so a follow-up question costs
 * only its own text. Prompts use Vamba's format (prompt.ts): the vision marker without pads before the first
 * user turn, no chat template.
 */
import { UsageError } from '../../errors.js';
import type { Generation } from '../../facade/answer.js';
import { massPerGroup } from '../../facade/relevance.js';
import { generateText } from '../../facade/text-generation.js';
import type { ChatTurn, GenerationOptions, ModelInfo } from '../../facade/types.js';
import { Tokenizer } from '../../io/tokenizer.js';
import type { Frame } from '../../media/index.js';
import { AttentionProbe } from '../../nn/attention-probe.js';
import type { Backend } from '../../runtime/backend.js';
import {
  type CheckpointSource,
  type EncodedVideo,
  type EncodeGeometry,
  type EncodePlan,
  type FrameBatchContext,
  type LiveContext,
  type LiveEncoding,
  type ModelRunner,
  runnerInfo,
  type SavedVideo,
} from '../family.js';
import type { Qwen2VLConfig } from '../qwen2vl/config.js';
import { videoGrid } from '../qwen2vl/size.js';
import { VambaLiveVideo } from './live.js';
import { Vamba } from './model.js';
import { vambaPrompt } from './prompt.js';
import { vambaDecodeCache, vambaEncodePlan } from './size.js';
import { encodeVideoFrames, FRAMES_PER_BATCH } from './video.js';
import { type VambaVideo, VambaVideoHandle, videoOf } from './video-handle.js';

export async function loadVambaRunner(
  src: CheckpointSource<Qwen2VLConfig>,
  backend: Backend,
): Promise<ModelRunner> {
  const tokenizer = await Tokenizer.fromDir(src.dir);
  const model = await Vamba.load(src.dir, { backend });
  const t = src.config.text;
  const info: ModelInfo = {
    ...runnerInfo(
      'vamba',
      src,
      { layers: t.num_hidden_layers, hiddenSize: t.hidden_size },
      { dtype: model.dtype, device: backend.name },
    ),
    decodeCache: vambaDecodeCache(src.config, model.dtype),
    videoRequired: true,
  };
  return new VambaRunner(info, model, tokenizer);
}

class VambaRunner implements ModelRunner {
  constructor(
    readonly info: ModelInfo,
    private readonly model: Vamba,
    private readonly tokenizer: Tokenizer,
  ) {}

  async encode(frames: AsyncIterable<Frame[]>, c: FrameBatchContext): Promise<EncodedVideo> {
    const handle = await encodeVideoFrames(this.model, frames, {
      frames: c.sampling.frames,
      still: c.kind === 'image',
      sampling: c.sampling.sampling,
      shortestEdge: c.sampling.minEdge,
      longestEdge: c.sampling.maxEdge,
      input: c.input,
      signal: c.signal,
      onFrames: c.onFrames,
      pieces: c.pieces,
    });
    return videoOf(handle);
  }

  /** Every layer's K/V as `encode` makes them (size.ts `vambaEncodePlan`); a still picture is a pair of frames. */
  planEncode(g: EncodeGeometry): EncodePlan {
    const frames = g.kind === 'image' ? 2 : g.frames;
    return vambaEncodePlan(this.model.config, {
      grid: videoGrid(this.model.processor.video, frames, g.width, g.height, 'drop'),
      framesPerBatch: FRAMES_PER_BATCH,
      pieceTokens: g.pieceTokens,
      dtype: this.model.dtype,
    });
  }

  live(context: LiveContext): LiveEncoding {
    return new VambaLiveVideo(this.model, context);
  }

  async saveVideo(encoded: EncodedVideo, path: string, metadata: Record<string, string>): Promise<void> {
    await (encoded as VambaVideo).handle.save(path, metadata);
  }

  /** The file's key must name this model and dtype; the facade checks the sampling it was made with. */
  async loadVideo(path: string): Promise<SavedVideo> {
    const handle = await VambaVideoHandle.load(path, this.model.backend, (saved) => ({
      ...saved,
      model: this.model.modelId,
      dtype: this.model.dtype,
    }));
    return { video: videoOf(handle), metadata: handle.metadata };
  }

  /** The video reaches the model through cross-attention: the prompt holds only its marker's two tokens. */
  promptTokens(turns: readonly ChatTurn[]): number {
    return this.promptIds(turns).length;
  }

  private promptIds(turns: readonly ChatTurn[]): number[] {
    return this.tokenizer.encode(vambaPrompt(turns), { addSpecialTokens: false });
  }

  async *generate(
    turns: ChatTurn[],
    encoded: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation {
    if (!encoded) throw new UsageError('Vamba answers questions about a video or an image: give one');
    const video = (encoded as VambaVideo).handle;
    const ids = this.promptIds(turns);
    // Where the answer looked: every layer's cross-attention over all the video tokens.
    using probe = opts.relevance ? new AttentionProbe(0, video.tokens) : undefined;
    using session = this.model.session(video, {
      capacity: ids.length + (opts.maxNewTokens ?? 512),
      probe,
    });
    const { completionTokens, finishReason } = yield* generateText(
      {
        session,
        input: ids,
        promptIds: ids,
        tokenizer: this.tokenizer,
        generationConfig: this.model.generationConfig,
        eosTokenIds: this.model.config.eos_token_id,
      },
      opts,
    );
    return {
      usage: {
        promptTokens: ids.length,
        videoTokens: video.tokens,
        completionTokens,
        totalTokens: ids.length + video.tokens + completionTokens,
      },
      finishReason,
      ...(probe && { videoAttention: massPerGroup(await probe.read(), video.grid[0]) }),
    };
  }

  dispose(): void {
    this.model[Symbol.dispose]();
  }
}
