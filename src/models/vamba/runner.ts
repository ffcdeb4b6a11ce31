/**
 * Vamba behind the facade. Videos go through Vamba's own streamed pipeline (encodeVideoInput: official
 * per-duration defaults, a batch of frames decoded, patched and encoded at a time) into a handle holding
 * every layer's cross-attention K/V, so a follow-up question costs only its own text. Prompts use Vamba's
 * format (io/prompt.ts): the vision marker without pads before the first user turn, no chat template.
 */
import { ModelError } from '../../errors.js';
import type { Generation } from '../../facade/answer.js';
import type { EncodedVideo, ModelRunner } from '../../facade/engine.js';
import type { ModelSummary } from '../../facade/inspect.js';
import { generateText } from '../../facade/text-generation.js';
import type {
  ChatTurn,
  GenerationOptions,
  ModelInfo,
  SamplingOptions,
  VideoProgress,
} from '../../facade/types.js';
import type { MediaInput } from '../../media/index.js';
import type { Backend } from '../../runtime/backend.js';
import { Vamba } from './model.js';
import { VAMBA_SYSTEM_PROMPT, VAMBA_VISION_MARKER } from './prompt.js';
import { encodeVideoInput } from './video.js';
import type { VideoHandle } from './video-handle.js';

export async function loadVambaRunner(
  summary: ModelSummary,
  backend: Backend,
  id: string,
): Promise<ModelRunner> {
  const model = await Vamba.load(summary.dir, { backend });
  if (!model.tokenizer)
    throw new ModelError(
      `${summary.dir}: no tokenizer.json; longshot needs the checkpoint's tokenizer to ask questions`,
    );
  const t = summary.config.text;
  const info: ModelInfo = {
    id,
    dir: summary.dir,
    architecture: 'vamba',
    parameters: summary.parameters,
    weightBytes: summary.weightBytes,
    dtype: model.dtype,
    device: backend.name,
    layers: t.num_hidden_layers,
    hiddenSize: t.hidden_size,
  };
  return new VambaRunner(info, model);
}

interface VambaVideo extends EncodedVideo {
  handle: VideoHandle;
}

/** The prompt Vamba's inference builds, extended to several turns in the same conv_qwen2 format. */
export function vambaChatPrompt(turns: readonly ChatTurn[], withVideo: boolean): string {
  const system = turns.find((t) => t.role === 'system')?.content ?? VAMBA_SYSTEM_PROMPT;
  let marked = !withVideo;
  let text = `<|im_start|>system\n${system}<|im_end|>\n`;
  for (const t of turns) {
    if (t.role === 'system') continue;
    const marker = !marked && t.role === 'user' ? VAMBA_VISION_MARKER : '';
    if (marker) marked = true;
    text += `<|im_start|>${t.role}\n${marker}${t.content}<|im_end|>\n`;
  }
  return `${text}<|im_start|>assistant\n`;
}

export class VambaRunner implements ModelRunner {
  /** Unset options are left to Vamba's per-duration evaluation defaults (512 frames, 1024 past 30 min). */
  readonly defaults: Required<SamplingOptions> = {
    sampling: 'uniform',
    frames: 512,
    fps: 2,
    maxEdge: 480,
    minEdge: 256,
  };

  constructor(
    readonly info: ModelInfo,
    private readonly model: Vamba,
  ) {}

  async encodeInput(
    input: MediaInput,
    o: SamplingOptions & { signal?: AbortSignal; progress?: VideoProgress },
  ): Promise<EncodedVideo> {
    if (o.sampling === 'fps')
      throw new ModelError(
        "Vamba samples a fixed number of frames: use --sampling uniform or middle, not 'fps'",
      );
    const handle = await encodeVideoInput(this.model, this.model.processor, input, {
      numFrames: o.frames,
      sampling: o.sampling,
      shortestEdge: o.minEdge,
      longestEdge: o.maxEdge,
      signal: o.signal,
      onStart: o.progress?.start,
      onFrames: o.progress?.frames,
    });
    const video: VambaVideo = {
      handle,
      tokens: handle.tokens,
      bytes: handle.bytes,
      dispose: () => handle[Symbol.dispose](),
    };
    return video;
  }

  async *generate(
    turns: ChatTurn[],
    encoded: EncodedVideo | undefined,
    opts: GenerationOptions & { signal?: AbortSignal },
  ): Generation {
    if (!encoded) throw new ModelError('Vamba answers about a video: give one');
    const video = (encoded as VambaVideo).handle;
    const tokenizer = this.model.tokenizer!;
    const ids = tokenizer.encode(vambaChatPrompt(turns, true), { addSpecialTokens: false });
    using session = this.model.session(video, { capacity: ids.length + (opts.maxNewTokens ?? 512) });
    const { completionTokens, finishReason } = yield* generateText(
      {
        session,
        input: ids,
        promptIds: ids,
        tokenizer,
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
    };
  }

  dispose(): void {
    this.model[Symbol.dispose]();
  }
}
