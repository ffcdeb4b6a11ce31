/**
 * Qwen2-VL parameter names and shapes, exactly as Hugging Face names them, and loading a checkpoint against
 * them. Two layouts exist on the hub: transformers 4.x (`visual.*`, `model.layers.*`, `lm_head.weight`) and
 * 5.x (`model.visual.*`, `model.language_model.*`); both map to the 4.x names used here.
 */
import { ModelError } from '../../errors.js';
import type { TensorSource } from '../../io/safetensors.js';
import { SelfAttention } from '../../nn/attention.js';
import { Linear } from '../../nn/linear.js';
import { GatedMLP, MLP } from '../../nn/mlp.js';
import { LayerNorm, RMSNorm } from '../../nn/norm.js';
import { diffParams, type ParamSpec, ParamStore } from '../../nn/params.js';
import type { Backend } from '../../runtime/backend.js';
import type { DType } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Qwen2VLConfig } from './config.js';

export const PATCH_EMBED = 'visual.patch_embed.proj.weight';

/** Attention shape of the Qwen2 decoder: q/k/v with bias, o_proj without. */
export function textAttentionConfig(config: Qwen2VLConfig) {
  const t = config.text;
  return {
    hiddenSize: t.hidden_size,
    numHeads: t.num_attention_heads,
    numKvHeads: t.num_key_value_heads,
    headDim: t.head_dim,
    qkvBias: true,
    oBias: false,
  };
}

export function visionSpecs(config: Pick<Qwen2VLConfig, 'vision'>): ParamSpec[] {
  const v = config.vision;
  const e = v.embed_dim;
  const merged = e * v.spatial_merge_size ** 2;
  const specs: ParamSpec[] = [
    { name: PATCH_EMBED, shape: [e, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size] },
  ];
  for (let i = 0; i < v.depth; i++) {
    const p = `visual.blocks.${i}`;
    specs.push(
      ...LayerNorm.specs(`${p}.norm1`, e),
      ...LayerNorm.specs(`${p}.norm2`, e),
      ...Linear.specs(`${p}.attn.qkv`, e, 3 * e, true),
      ...Linear.specs(`${p}.attn.proj`, e, e, true),
      ...MLP.specs(`${p}.mlp`, e, e * v.mlp_ratio),
    );
  }
  specs.push(
    ...LayerNorm.specs('visual.merger.ln_q', e),
    ...MLP.specs('visual.merger.mlp', merged, merged, v.hidden_size, ['0', '2']),
  );
  return specs;
}

export function textSpecs(config: Qwen2VLConfig): ParamSpec[] {
  const t = config.text;
  const specs: ParamSpec[] = [{ name: 'model.embed_tokens.weight', shape: [t.vocab_size, t.hidden_size] }];
  for (let i = 0; i < t.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    specs.push(
      ...RMSNorm.specs(`${p}.input_layernorm`, t.hidden_size),
      ...SelfAttention.specs(`${p}.self_attn`, textAttentionConfig(config)),
      ...RMSNorm.specs(`${p}.post_attention_layernorm`, t.hidden_size),
      ...GatedMLP.specs(`${p}.mlp`, t.hidden_size, t.intermediate_size),
    );
  }
  specs.push(...RMSNorm.specs('model.norm', t.hidden_size));
  if (!t.tie_word_embeddings) specs.push(...Linear.specs('lm_head', t.hidden_size, t.vocab_size, false));
  return specs;
}

/** Every parameter of a Qwen2VLForConditionalGeneration, in 4.x names. */
export const qwen2vlSpecs = (config: Qwen2VLConfig): ParamSpec[] => [
  ...visionSpecs(config),
  ...textSpecs(config),
];

/** Maps a checkpoint name of either layout to the 4.x name. */
export function canonicalName(name: string): string {
  if (name.startsWith('model.language_model.')) return `model.${name.slice('model.language_model.'.length)}`;
  if (name.startsWith('model.visual.')) return `visual.${name.slice('model.visual.'.length)}`;
  return name;
}

/**
 * Loads every parameter from `source` onto `backend` as `dtype`, after checking names and shapes against the
 * config. A tied checkpoint that still stores `lm_head.weight` has it ignored.
 */
export async function loadQwen2VLParams(
  source: TensorSource,
  config: Qwen2VLConfig,
  backend: Backend,
  dtype: DType,
  where: string,
  /** Models built on Qwen2-VL (Vamba) pass their full list. */
  specs: readonly ParamSpec[] = qwen2vlSpecs(config),
  family = 'Qwen2-VL',
): Promise<ParamStore> {
  const original = new Map<string, string>();
  const found = new Map<string, readonly number[]>();
  for (const name of source.names()) {
    const canon = canonicalName(name);
    if (canon === 'lm_head.weight' && config.text.tie_word_embeddings) continue;
    if (original.has(canon))
      throw new ModelError(
        `${where}: tensor "${canon}" is stored twice (as "${original.get(canon)}" and "${name}")`,
      );
    original.set(canon, name);
    found.set(canon, source.info(name).shape);
  }
  const diff = diffParams(specs, found);
  if (diff) throw new ModelError(`${where}: the weights do not match config.json (${family}): ${diff}`);
  const tensors = new Map<string, Tensor>();
  try {
    for (const s of specs) {
      let t = await source.loadTensor(backend, original.get(s.name)!, { dtype });
      // The Conv3d patch embedding over [C][T][ph][pw] rows is a Linear with the kernel flattened.
      if (s.name === PATCH_EMBED) {
        const flat = t.reshape([s.shape[0], t.size / s.shape[0]]);
        t.dispose();
        t = flat;
      }
      tensors.set(s.name, t);
    }
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return new ParamStore(tensors);
}
