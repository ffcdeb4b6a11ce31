/**
 * Assembles a trainable TimeViper checkpoint in the official layout from its public parts, as the official
 * training starts (docs/MODEL.md there): timm's SigLIP (`vit_so400m_patch14_siglip_384`, a .safetensors or a
 * torch.save .bin/.pth, read safely) under `vision_backbone.featurizer.`, a Nemotron-H checkpoint
 * (NVIDIA-Nemotron-Nano-9B-v2-Base) under `llm_backbone.llm.`, and new tensors: the projector MLP with PyTorch's
 * default Linear init (U(±1/√fan_in) for weights and biases), TransV's cross-attentions (the same init, or copied
 * from the nearest self-attention at or after the stage's layer within 20 blocks, the official
 * `init_merge_modules_from_nearest_self_attn`) and α = 0 (the gate closed). The tokenizer gains `<image>` as an
 * added special token after the last id (the official `add_special_tokens`; the embedding table is not resized,
 * the placeholder is never looked up).
 */
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { InputError, ModelError } from '../../errors.js';
import { Checkpoint, INDEX_FILE } from '../../io/checkpoint.js';
import type { HostTensor } from '../../io/convert.js';
import { PthFile } from '../../io/pth.js';
import type { TensorSource } from '../../io/safetensors.js';
import type { SafetensorsDType } from '../../io/safetensors-format.js';
import type { LazyEntry } from '../../io/safetensors-write.js';
import { type ShardedResult, writeShardedCheckpoint } from '../../io/sharded-write.js';
import { diffParams, numelOf } from '../../nn/params.js';
import { type DType, fromF32 } from '../../runtime/dtype.js';
import { seededUniform } from '../../util/random.js';
import { parseNemotronHConfig } from '../nemotron_h/config.js';
import { nemotronHSpecs } from '../nemotron_h/weights.js';
import { so400m } from '../siglip/config.js';
import { siglipLayoutOf, siglipSpecs } from '../siglip/model.js';
import { parseTimeViperConfig } from './config.js';
import { IMAGE_TOKEN } from './prompt.js';
import { ALPHA, LLM_PREFIX, mergeModule, timeViperSpecs, VISION_PREFIX } from './weights.js';

export interface TimeViperConvertOptions {
  /** Drop stages (default none); with mergeModule CrossAttention, TransV. */
  pdropType?: string | null;
  mergeModule?: 'CrossAttention' | 'no_merge';
  /** Copy each cross-attention from the nearest self-attention (default: PyTorch's Linear init). */
  initMergeFromAttention?: boolean;
  /** SigLIP's input side (384 for so400m) and heads (16), which its tensor shapes do not tell. */
  imageSize?: number;
  visionHeads?: number;
  seed?: number;
  shardBytes?: number;
  onProgress?: (written: number, total: number) => void;
}

const RUNTIME_OF: Partial<Record<SafetensorsDType, DType>> = { F32: 'f32', BF16: 'bf16', F16: 'f16' };

async function readJson(path: string): Promise<Record<string, unknown>> {
  const text = await readFile(path, 'utf8').catch(() => {
    throw new InputError(`cannot read ${path}`);
  });
  return JSON.parse(text) as Record<string, unknown>;
}

/** timm's SigLIP weights: a .safetensors or torch.save file, or a directory holding one. */
async function openSiglip(path: string): Promise<TensorSource & { close(): Promise<void> }> {
  let file = path;
  if (!/\.(safetensors|bin|pth|pt)$/.test(path)) {
    const names = await readdir(path).catch(() => {
      throw new InputError(`${path}: no such SigLIP weights file or directory`);
    });
    const pick = ['model.safetensors', 'open_clip_pytorch_model.bin', 'pytorch_model.bin'].find((n) =>
      names.includes(n),
    );
    if (!pick) throw new InputError(`${path}: no model.safetensors or pytorch_model.bin for SigLIP`);
    file = join(path, pick);
  }
  return file.endsWith('.safetensors') ? Checkpoint.open(file) : PthFile.open(file);
}

/** Adds `<image>` to tokenizer.json (and tokenizer_config.json) in `dir`; returns its id. */
async function addImageToken(dir: string): Promise<number> {
  const path = join(dir, 'tokenizer.json');
  const tok = await readJson(path);
  const added = (tok.added_tokens ?? []) as { id: number; content: string }[];
  const vocab = ((tok.model as { vocab?: Record<string, number> } | undefined)?.vocab ?? {}) as Record<
    string,
    number
  >;
  const existing = added.find((t) => t.content === IMAGE_TOKEN)?.id ?? vocab[IMAGE_TOKEN];
  if (existing !== undefined) return existing;
  const id = Math.max(-1, ...Object.values(vocab), ...added.map((t) => t.id)) + 1;
  const entry = {
    content: IMAGE_TOKEN,
    lstrip: false,
    normalized: false,
    rstrip: false,
    single_word: false,
    special: true,
  };
  tok.added_tokens = [...added, { id, ...entry }];
  await writeFile(path, JSON.stringify(tok));
  const cfgPath = join(dir, 'tokenizer_config.json');
  const cfg = await readJson(cfgPath).catch(() => null);
  if (cfg?.added_tokens_decoder) {
    (cfg.added_tokens_decoder as Record<string, unknown>)[String(id)] = entry;
    await writeFile(cfgPath, `${JSON.stringify(cfg, null, 2)}\n`);
  }
  return id;
}

export async function convertTimeViper(
  siglipPath: string,
  llmDir: string,
  outDir: string,
  opts: TimeViperConvertOptions = {},
): Promise<ShardedResult & { imageTokenId: number }> {
  const llmJson = await readJson(join(llmDir, 'config.json'));
  const llm = parseNemotronHConfig(llmJson, join(llmDir, 'config.json'));
  const vision = await openSiglip(siglipPath);
  const checkpoint = await Checkpoint.open(llmDir);
  try {
    if (siglipLayoutOf(vision.names()) !== 'timm')
      throw new ModelError(`${siglipPath}: not timm's SigLIP layout (no patch_embed.proj.weight)`);
    const patch = vision.info('patch_embed.proj.weight').shape;
    const tokens = vision.info('pos_embed').shape[1];
    const depth = new Set(vision.names().flatMap((n) => /^blocks\.(\d+)\./.exec(n)?.[1] ?? [])).size;
    const visionConfig = {
      ...so400m('timm'),
      hidden_size: patch[0],
      num_channels: patch[1],
      patch_size: patch[2],
      intermediate_size: vision.info('blocks.0.mlp.fc1.weight').shape[0],
      num_hidden_layers: depth,
      image_size: opts.imageSize ?? 384,
      num_attention_heads: opts.visionHeads ?? 16,
    };
    const side = Math.floor(visionConfig.image_size / visionConfig.patch_size);
    if (side * side !== tokens)
      throw new InputError(
        `${siglipPath}: ${tokens} position embeddings do not fit ${visionConfig.image_size} px in ${visionConfig.patch_size} px patches (give the image size)`,
      );
    const shapes = new Map(vision.names().map((n) => [n, vision.info(n).shape] as const));
    const visionDiff = diffParams(
      siglipSpecs(visionConfig, 'timm', depth - 1),
      new Map([...shapes].filter(([n]) => /^(patch_embed|pos_embed|blocks)/.test(n))),
    );
    if (visionDiff) throw new ModelError(`${siglipPath}: not a complete timm SigLIP: ${visionDiff}`);
    const llmShapes = new Map(
      checkpoint
        .names()
        .filter((n) => !n.startsWith('mtp.'))
        .map((n) => [n, checkpoint.info(n).shape] as const),
    );
    const llmDiff = diffParams(nemotronHSpecs(llm), llmShapes);
    if (llmDiff) throw new ModelError(`${llmDir}: not a complete Nemotron-H checkpoint: ${llmDiff}`);

    const pdropType = opts.pdropType ?? null;
    const mergeModuleName = pdropType ? (opts.mergeModule ?? 'CrossAttention') : 'no_merge';
    const outJson: Record<string, unknown> = {
      model_type: 'timeviper',
      architectures: ['TimeViper'],
      llm_config: llmJson,
      vision_config: visionConfig,
      vision_layout: 'timm',
      vision_feature_block: -2,
      num_compressed_tokens: 16,
      projector_hidden_act: 'gelu',
      image_token_index: -1, // the tokenizer's, once `<image>` is added
      use_pdrop: pdropType !== null,
      pdrop_type: pdropType,
      merge_module: mergeModuleName,
    };
    const config = parseTimeViperConfig({ ...outJson, image_token_index: 0 }, 'the converted config');
    const dtype = checkpoint.info('backbone.embeddings.weight').dtype;
    if (!RUNTIME_OF[dtype])
      throw new ModelError(`${llmDir}: embeddings stored as ${dtype}, not a float type`);
    const u = seededUniform(opts.seed ?? 0);
    const fresh = (shape: readonly number[], fill: (v: Float32Array) => void): HostTensor => {
      const v = new Float32Array(numelOf(shape));
      fill(v);
      return { dtype, shape, data: fromF32(RUNTIME_OF[dtype]!, v) as HostTensor['data'] };
    };
    const linearInit = (fanIn: number) => (v: Float32Array) => {
      const b = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < v.length; i++) v[i] = (2 * u() - 1) * b;
    };
    const nearestAttention = (layer: number) => {
      for (let i = layer; i < Math.min(layer + 20, llm.hybrid_override_pattern.length); i++)
        if (llm.hybrid_override_pattern[i] === '*') return i;
      throw new InputError(
        `no attention block within 20 blocks of ${layer} to copy TransV's cross-attention from`,
      );
    };
    // The full featurizer (final norm and pooling head included) as the official state dict holds it.
    const visionNames = vision.names().filter((n) => !n.startsWith('head.'));
    const entries: Array<[string, LazyEntry]> = visionNames.map((n) => [
      VISION_PREFIX + n,
      { dtype: vision.info(n).dtype, shape: vision.info(n).shape, load: () => vision.read(n) },
    ]);
    const specs = timeViperSpecs(config);
    const shapeOf = new Map(specs.map((sp) => [sp.name, sp.shape]));
    for (const spec of specs) {
      if (spec.name.startsWith(VISION_PREFIX)) continue;
      const inLlm = spec.name.startsWith(LLM_PREFIX) && llmShapes.has(spec.name.slice(LLM_PREFIX.length));
      if (inLlm) {
        const n = spec.name.slice(LLM_PREFIX.length);
        entries.push([
          spec.name,
          { dtype: checkpoint.info(n).dtype, shape: spec.shape, load: () => checkpoint.read(n) },
        ]);
        continue;
      }
      const stage = config.stages.findIndex((_, j) => spec.name.startsWith(`${mergeModule(j)}.`));
      if (stage >= 0 && opts.initMergeFromAttention) {
        const src = `backbone.layers.${nearestAttention(config.stages[stage].layer)}.mixer.${spec.name.split('.').slice(-2).join('.')}`;
        entries.push([
          spec.name,
          { dtype: checkpoint.info(src).dtype, shape: spec.shape, load: () => checkpoint.read(src) },
        ]);
        continue;
      }
      // A bias's fan-in is its layer's input width.
      const weight = spec.name.endsWith('.bias')
        ? shapeOf.get(spec.name.replace(/bias$/, 'weight'))!
        : spec.shape;
      const init = spec.name === ALPHA ? (v: Float32Array) => v.fill(0) : linearInit(weight[1]);
      entries.push([spec.name, { dtype, shape: spec.shape, load: async () => fresh(spec.shape, init) }]);
    }
    const result = await writeShardedCheckpoint(
      outDir,
      entries,
      opts.shardBytes ?? 5_000_000_000,
      opts.onProgress,
    );
    for (const f of await readdir(llmDir))
      if (
        !f.endsWith('.safetensors') &&
        f !== INDEX_FILE &&
        f !== 'config.json' &&
        /\.(json|txt|model|jinja)$/.test(f)
      )
        await copyFile(join(llmDir, f), join(outDir, basename(f)));
    const id = await addImageToken(outDir);
    await writeFile(
      join(outDir, 'config.json'),
      `${JSON.stringify({ ...outJson, image_token_index: id }, null, 2)}\n`,
    );
    return { ...result, imageTokenId: id };
  } finally {
    await vision.close();
    await checkpoint.close();
  }
}
