/**
 * TimeViper (`GenericTimeViperVLM`): SigLIP features of each frame (the configured block, no final norm), ToMe
 * to 16 tokens per frame, the projector MLP, and the Nemotron-H LLM with its drop stages. In the prompt, each
 * `<image>` placeholder is replaced by its frame's tokens, in order; the placeholder id itself is never embedded.
 */
import { InputError, ModelError } from '../../errors.js';
import type { CausalLM } from '../../generate/types.js';
import { Checkpoint } from '../../io/checkpoint.js';
import { openTorchWeights } from '../../io/pth.js';
import type { TensorSource } from '../../io/safetensors.js';
import type { HybridCache } from '../../nn/cache.js';
import { MLP } from '../../nn/mlp.js';
import type { ParamStore } from '../../nn/params.js';
import { tomeApply, tomePlan } from '../../nn/tome.js';
import type { Backend } from '../../runtime/backend.js';
import type { DType } from '../../runtime/dtype.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import { SiglipVision } from '../siglip/model.js';
import { readTimeViperConfig, type TimeViperConfig } from './config.js';
import { TimeViperLM, type VisionSpan } from './language-model.js';
import { loadTimeViperParams, PROJECTOR, VISION_PREFIX } from './weights.js';

/** Frames per pass of the vision tower (the official inference splits videos into clips of 256). */
export const CLIP_FRAMES = 256;

/** The checkpoint's weights: model.safetensors (or a sharded index), else a torch.save file. */
export async function openTimeViperWeights(dir: string): Promise<TensorSource & { close(): Promise<void> }> {
  return (await openTorchWeights(dir)) ?? Checkpoint.open(dir);
}

/** A prompt's token ids with the frames' projected tokens [frames, tokensPerFrame, hidden]. */
export interface TimeViperInput {
  ids: readonly number[];
  visual: Tensor | null;
}

export class TimeViperModel implements Disposable {
  constructor(
    readonly config: TimeViperConfig,
    readonly vision: SiglipVision,
    readonly projector: MLP,
    readonly lm: TimeViperLM,
  ) {}

  /** `alphaTensor`: the TransV gates as ops of α (a training forward, src/train/timeviper.ts). */
  static async fromParams(
    config: TimeViperConfig,
    p: ParamStore,
    alphaTensor = false,
  ): Promise<TimeViperModel> {
    const vision = SiglipVision.load(
      p,
      config.vision,
      config.visionLayout,
      config.featureBlock,
      VISION_PREFIX,
    );
    const projector = MLP.load(p, PROJECTOR, config.projectorAct, ['0', '2']);
    const lm = await TimeViperLM.load(p, config, alphaTensor);
    const left = p.remaining();
    if (left.length) throw new ModelError(`TimeViper: parameters loaded but not used: ${left.join(', ')}`);
    return new TimeViperModel(config, vision, projector, lm);
  }

  /**
   * Loads a checkpoint directory (config.json + model.safetensors or model.pth / pytorch_model.bin); `config`
   * when the caller has resolved it already (an official checkpoint's `<image>` id comes from its tokenizer).
   */
  static async load(
    dir: string,
    backend: Backend,
    dtype: DType,
    config?: TimeViperConfig,
  ): Promise<TimeViperModel> {
    config ??= await readTimeViperConfig(dir);
    const source = await openTimeViperWeights(dir);
    try {
      return await TimeViperModel.fromParams(
        config,
        await loadTimeViperParams(source, config, backend, dtype, dir),
      );
    } finally {
      await source.close();
    }
  }

  /**
   * pixels [frames, 3, size, size] → projected tokens [frames, tokensPerFrame, hidden], in clips of `clipFrames`
   * (each frame's tokens are its own: the clip size changes no value). `checkpoint` (training): runs SigLIP, and
   * ToMe's merge with the projector, each as one checkpointed part — ToMe's plan, which awaits, is made between
   * them from SigLIP's features (a host decision: no gradient).
   */
  async encode(
    pixels: Tensor,
    checkpoint = (fn: () => Tensor) => fn(),
    clipFrames = CLIP_FRAMES,
  ): Promise<Tensor> {
    const clips: Tensor[] = [];
    try {
      for (let f = 0; f < pixels.shape[0]; f += clipFrames) {
        const clip = pixels.narrow(f, Math.min(f + clipFrames, pixels.shape[0]));
        const features = checkpoint(() => this.vision.forward(clip));
        clip.dispose();
        // As many tokens kept as the frame has: no merging round (the official schedule is then empty).
        const plan =
          features.shape[1] > this.config.tokensPerFrame
            ? await tomePlan(features, this.config.tokensPerFrame)
            : null;
        clips.push(
          checkpoint(() => {
            if (!plan) return this.projector.forward(features);
            const merged = tomeApply(features, plan);
            try {
              return this.projector.forward(merged);
            } finally {
              merged.dispose();
            }
          }),
        );
        features.dispose();
      }
      return clips.length === 1 ? clips[0] : ops.concat(clips, 0);
    } finally {
      if (clips.length > 1) for (const c of clips) c.dispose();
    }
  }

  /**
   * The prompt's embeddings: text runs embedded, each placeholder replaced by its frame's tokens. The vision
   * span starts at the first placeholder and covers every frame's tokens (the official code assumes them
   * contiguous).
   */
  embedPrompt(input: TimeViperInput): { x: Tensor; vision: VisionSpan | null } {
    const { ids, visual } = input;
    const image = this.config.imageTokenId;
    const frames = ids.filter((t) => t === image).length;
    const have = visual?.shape[0] ?? 0;
    if (frames !== have)
      throw new InputError(`TimeViper: the prompt has ${frames} <image> placeholders for ${have} frames`);
    if (!visual) return { x: this.lm.embed(ids), vision: null };
    const perFrame = visual.shape[1];
    const first = ids.indexOf(image);
    return tidy(() => {
      // Text runs and runs of consecutive placeholders alternate; a run of frames is one block of `visual`
      // (one view, one cast: a video's thousand frames are not a thousand parts to join and split in backward).
      const parts: Tensor[] = [];
      let frame = 0;
      for (let i = 0; i < ids.length; ) {
        const isImage = ids[i] === image;
        let end = i;
        while (end < ids.length && (ids[end] === image) === isImage) end++;
        if (isImage) {
          const block = visual
            .narrow(frame, frame + end - i)
            .reshape([(end - i) * perFrame, visual.shape[2]]);
          parts.push(ops.cast(block, this.lm.embeddings.dtype));
          frame += end - i;
        } else parts.push(this.lm.embed(ids.slice(i, end)));
        i = end;
      }
      const x = parts.length > 1 ? ops.concat(parts, 0) : ops.clone(parts[0]);
      return { x, vision: { start: first, count: frames * perFrame } };
    });
  }

  /**
   * A prefill-then-decode session; `drops` false runs the prefill without the drop stages (every token); with
   * `traceTransfer`, each prefill also records the TransV stages' mass per dropped token.
   */
  session(capacity = 256, drops = true, traceTransfer = false): TimeViperSession {
    return new TimeViperSession(this, this.lm.newCaches(capacity), drops, traceTransfer);
  }

  [Symbol.dispose](): void {
    this.vision[Symbol.dispose]();
    this.projector[Symbol.dispose]();
    this.lm[Symbol.dispose]();
  }
}

/** A prompt with its frames, then one token per step; the drop stages (when on) act in the prefill. */
export class TimeViperSession implements CausalLM<TimeViperInput>, Disposable {
  /** The vision positions each stage kept in the last prefill. */
  kept: number[][] = [];
  /** Per stage of the last prefill, the TransV mass per dropped token (with traceTransfer; else empty). */
  transfer: (Float32Array | null)[] = [];

  constructor(
    readonly model: TimeViperModel,
    readonly caches: HybridCache[],
    readonly drops = true,
    readonly traceTransfer = false,
  ) {}

  async prefill(input: TimeViperInput): Promise<Tensor> {
    if (!input.ids.length) throw new InputError('prefill: the prompt is empty');
    const { x, vision } = this.model.embedPrompt(input);
    try {
      // Without a vision span the LM runs no stage: every layer sees every token.
      const out = await this.model.lm.forward(x, this.drops ? vision : null, this.caches, this.traceTransfer);
      this.kept = out.kept;
      this.transfer = out.transfer;
      return out.logits;
    } finally {
      x.dispose();
    }
  }

  async step(token: number): Promise<Tensor> {
    if (!this.caches[0]?.length) throw new InputError('step: call prefill first');
    const x = this.model.lm.embed([token]);
    try {
      return (await this.model.lm.forward(x, null, this.caches)).logits;
    } finally {
      x.dispose();
    }
  }

  [Symbol.dispose](): void {
    for (const c of this.caches) c[Symbol.dispose]();
  }
}
