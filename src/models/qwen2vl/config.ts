/**
 * Qwen2-VL `config.json` (and Vamba's, which is the same class plus five fields), read the way transformers'
 * `Qwen2VLConfig` reads it, from either layout (docs/io.md, "Config compatibility"):
 *  - transformers 4.x, flat: text keys at the top level, `rope_theta`, `rope_scaling: {type: "mrope", mrope_section}`;
 *  - transformers 5.x, nested: `text_config` (with `rope_parameters: {rope_theta, mrope_section}`) and
 *    `vision_config`; the image/video ids stay at the top. When `text_config` is present it alone describes the
 *    language model, as in transformers; stale top-level copies are kept as extras.
 * Absent keys take the transformers class defaults (`Qwen2VLTextConfig`, `Qwen2VLVisionConfig`, `Qwen2VLConfig`).
 * Only what the model uses is checked: the text model's shapes at load; what only images and videos use (the
 * vision tower's shapes, the ids of their placeholders) when one is given (`visualInputProblem`), since
 * transformers builds such a model and runs its text prompts. bos/eos may lie outside a tiny vocabulary, as
 * transformers' defaults do.
 */
import { join } from 'node:path';
import { ModelError } from '../../errors.js';
import { Fields, type JsonObject, readJsonFile } from '../../io/json-fields.js';

export interface Qwen2VLTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** hidden_size / num_attention_heads: transformers' Qwen2-VL derives it and ignores a `head_dim` key. */
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  /** M-RoPE split of the head_dim/2 rotary frequencies into (t, h, w) parts; 1 to 3 (`nn/rotary.ts` `mrope`). */
  mrope_section: number[];
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  hidden_act: string;
}

export interface Qwen2VLVisionConfig {
  depth: number;
  embed_dim: number;
  num_heads: number;
  mlp_ratio: number;
  /** Output width of the patch merger (= the LLM's hidden_size). */
  hidden_size: number;
  patch_size: number;
  temporal_patch_size: number;
  spatial_merge_size: number;
  in_channels: number;
  hidden_act: string;
  /** Base of the 2-D rotary embedding (`vision_config.rope_parameters.rope_theta` in 5.x; 10000 before). */
  rope_theta: number;
}

/** Vamba's Mamba-2 mixer on the video tokens; the values are mamba_ssm 2.2.2's `Mamba2` defaults. */
export interface VisionMambaMixerConfig {
  enable: boolean;
  d_state: number;
  d_conv: number;
  expand: number;
  headdim: number;
  ngroups: number;
  /** null: d_inner (= expand·hidden_size). */
  d_ssm: number | null;
  chunk_size: number;
  rmsnorm: boolean;
  norm_before_gate: boolean;
  D_has_hdim: boolean;
  bias: boolean;
  conv_bias: boolean;
  dt_min: number;
  dt_max: number;
  dt_init_floor: number;
  dt_limit: [number, number];
  A_init_range: [number, number];
  use_mem_eff_path: boolean;
}

export interface Qwen2VLConfig {
  model_type: string;
  architectures: string[];
  /** `torch_dtype` (4.x) or `dtype` (5.x); null when absent. */
  dtype: string | null;
  text: Qwen2VLTextConfig;
  vision: Qwen2VLVisionConfig;
  bos_token_id: number;
  /** Always a list (configs store an int or a list). */
  eos_token_id: number[];
  pad_token_id: number | null;
  vision_start_token_id: number;
  vision_end_token_id: number;
  vision_token_id: number;
  image_token_id: number;
  video_token_id: number;
  // Vamba (absent in plain Qwen2-VL configs: then all off).
  use_alpha_balancing: boolean;
  cross_attn_use_position_embeddings: boolean;
  cross_attn_use_layer_norm: boolean;
  distill_coeff: number;
  vision_mamba_mixer_config: VisionMambaMixerConfig;
  /** Keys this parser does not interpret, kept verbatim (nested ones as `text_config.key`, `vision_config.key`…). */
  extra: JsonObject;
}

/** transformers' `Qwen2VLTextConfig` defaults (the 72B text sizes; 4.x's flat `Qwen2VLConfig` has the same). */
const TEXT_DEFAULTS = {
  vocab_size: 152064,
  hidden_size: 8192,
  intermediate_size: 29568,
  num_hidden_layers: 80,
  num_attention_heads: 64,
  num_key_value_heads: 8,
  hidden_act: 'silu',
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  use_sliding_window: false,
  sliding_window: 4096,
  max_window_layers: 80,
  rope_theta: 1_000_000,
  bos_token_id: 151643,
  eos_token_id: 151645,
} as const;

/** transformers' `Qwen2VLVisionConfig` defaults (Qwen2-VL-7B's vision tower). */
const VISION_DEFAULTS: Readonly<Qwen2VLVisionConfig> = {
  depth: 32,
  embed_dim: 1280,
  num_heads: 16,
  mlp_ratio: 4,
  hidden_size: 3584,
  patch_size: 14,
  temporal_patch_size: 2,
  spatial_merge_size: 2,
  in_channels: 3,
  hidden_act: 'quick_gelu',
  rope_theta: 10000,
};

/** transformers' `Qwen2VLConfig` defaults; vision_token_id is no class argument, Qwen2-VL's tokenizer has it. */
const TOKEN_DEFAULTS = {
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_token_id: 151654,
  image_token_id: 151655,
  video_token_id: 151656,
} as const;

export const MAMBA2_DEFAULTS: Readonly<VisionMambaMixerConfig> = {
  enable: false,
  d_state: 128,
  d_conv: 4,
  expand: 2,
  headdim: 64,
  ngroups: 1,
  d_ssm: null,
  chunk_size: 256,
  rmsnorm: true,
  norm_before_gate: false,
  D_has_hdim: false,
  bias: false,
  conv_bias: true,
  dt_min: 0.001,
  dt_max: 0.1,
  dt_init_floor: 1e-4,
  dt_limit: [0, Number.POSITIVE_INFINITY],
  A_init_range: [1, 16],
  use_mem_eff_path: true,
};

/** Whether config.json describes a Qwen2-VL-class model (model_type "qwen2_vl", the reader's default when absent). */
export function isQwen2VLConfigJson(json: JsonObject): boolean {
  return (json.model_type ?? 'qwen2_vl') === 'qwen2_vl';
}

/** Parses a config.json object (either layout). `source` names the file in errors. */
export function parseQwen2VLConfig(json: unknown, source = 'config.json'): Qwen2VLConfig {
  const top = Fields.of(json, source);
  const modelType = top.str('model_type', 'qwen2_vl');
  if (modelType !== 'qwen2_vl')
    throw new ModelError(
      `${source}: model_type "${modelType}" is not a Qwen2-VL / Vamba config (expected "qwen2_vl")`,
    );
  // transformers builds the text config from `text_config` when there is one, else from the top-level keys.
  const textF = top.has('text_config') ? top.nested('text_config') : top;
  const visF = top.nested('vision_config');
  const text = readText(top, textF, source);
  const vision = readVision(visF, source);

  // bos/eos/pad belong to the text config in 5.x and to the top level in 4.x; they only seed generation
  // defaults (generation_config.json usually overrides them), so they may lie outside the vocabulary.
  const either = <T>(read: (f: Fields) => T | undefined): T | undefined => read(textF) ?? read(top);
  const T = TOKEN_DEFAULTS;
  const ids = {
    bos_token_id: either((f) => f.int('bos_token_id')) ?? TEXT_DEFAULTS.bos_token_id,
    eos_token_id: either((f) => f.intOrList('eos_token_id')) ?? [TEXT_DEFAULTS.eos_token_id],
    pad_token_id: either((f) => f.int('pad_token_id')) ?? null,
    vision_start_token_id: top.int('vision_start_token_id', T.vision_start_token_id),
    vision_end_token_id: top.int('vision_end_token_id', T.vision_end_token_id),
    vision_token_id: top.int('vision_token_id', T.vision_token_id),
    image_token_id: top.int('image_token_id', T.image_token_id),
    video_token_id: top.int('video_token_id', T.video_token_id),
  };
  const mixer = readMixer(top.nested('vision_mamba_mixer_config'), text.hidden_size, source);
  const config: Qwen2VLConfig = {
    model_type: modelType,
    architectures: readArchitectures(top, source),
    dtype: readDType(top, textF),
    text,
    vision,
    ...ids,
    use_alpha_balancing: top.bool('use_alpha_balancing', false),
    cross_attn_use_position_embeddings: top.bool('cross_attn_use_position_embeddings', false),
    cross_attn_use_layer_norm: top.bool('cross_attn_use_layer_norm', false),
    distill_coeff: top.num('distill_coeff', 0),
    vision_mamba_mixer_config: mixer.config,
    extra: {},
  };
  config.extra = collectExtra(top, {
    ...(textF === top ? {} : { text_config: textF }),
    vision_config: visF,
    vision_mamba_mixer_config: mixer.fields,
  });
  return config;
}

function positive(source: string, key: string, value: number): number {
  if (!(value > 0)) throw new ModelError(`${source}: ${key} must be positive (got ${value})`);
  return value;
}

function readText(top: Fields, f: Fields, source: string): Qwen2VLTextConfig {
  const D = TEXT_DEFAULTS;
  const at = (k: string) => (f === top ? k : `text_config.${k}`);
  const size = (k: keyof typeof D & string) => positive(source, at(k), f.int(k, D[k] as number));
  const hidden_size = size('hidden_size');
  const num_attention_heads = size('num_attention_heads');
  // An explicit null means "as many as the query heads" (transformers' backward-compatibility rule).
  const kv = f.int('num_key_value_heads');
  const num_key_value_heads = positive(
    source,
    at('num_key_value_heads'),
    kv ?? (f.obj.num_key_value_heads === null ? num_attention_heads : D.num_key_value_heads),
  );
  if (hidden_size % num_attention_heads)
    throw new ModelError(
      `${source}: ${at('hidden_size')} ${hidden_size} is not divisible by num_attention_heads ${num_attention_heads}`,
    );
  if (num_attention_heads % num_key_value_heads)
    throw new ModelError(
      `${source}: ${at('num_attention_heads')} ${num_attention_heads} is not a multiple of num_key_value_heads ${num_key_value_heads}`,
    );
  const head_dim = hidden_size / num_attention_heads;
  // transformers sizes the projections by hidden_size / heads but its rotary by a `head_dim` key: a model
  // whose key differs builds and never runs.
  const headDimKey = f.int('head_dim');
  if (headDimKey !== undefined && headDimKey !== head_dim)
    throw new ModelError(
      `${source}: ${at('head_dim')} ${headDimKey} ≠ hidden_size / num_attention_heads = ${head_dim} (transformers cannot run it either); remove head_dim or make it equal`,
    );
  const num_hidden_layers = size('num_hidden_layers');
  rejectSlidingWindow(f, num_hidden_layers, source);
  const rope = readRope(f, head_dim);
  return {
    vocab_size: size('vocab_size'),
    hidden_size,
    intermediate_size: size('intermediate_size'),
    num_hidden_layers,
    num_attention_heads,
    num_key_value_heads,
    head_dim,
    rms_norm_eps: positive(source, at('rms_norm_eps'), f.num('rms_norm_eps', D.rms_norm_eps)),
    ...rope,
    max_position_embeddings: size('max_position_embeddings'),
    // 5.x moved it to the top level (a `Qwen2VLConfig` argument); older nested configs keep it in text_config.
    tie_word_embeddings:
      top.bool('tie_word_embeddings') ?? f.bool('tie_word_embeddings', D.tie_word_embeddings),
    hidden_act: f.str('hidden_act', D.hidden_act),
  };
}

/** Sliding-window layers (none in any Qwen2-VL release) would silently attend too far here: refuse them. */
function rejectSlidingWindow(f: Fields, layers: number, source: string): void {
  const D = TEXT_DEFAULTS;
  const use = f.bool('use_sliding_window', D.use_sliding_window);
  const window = f.int('sliding_window') ?? D.sliding_window;
  const fullLayers = f.int('max_window_layers', D.max_window_layers);
  const types = f.get('layer_types');
  const sliding = Array.isArray(types) ? types.includes('sliding_attention') : use && fullLayers < layers;
  if (sliding)
    throw new ModelError(
      `${source}: sliding-window attention (use_sliding_window, window ${window}) is not supported; set use_sliding_window to false`,
    );
}

/**
 * rope_theta and mrope_section. transformers reads `rope_scaling` (4.x name) before `rope_parameters` (5.x),
 * takes rope_theta from there or from a sibling `rope_theta` key, and treats type "mrope" as "default".
 */
function readRope(f: Fields, headDim: number): { rope_theta: number; mrope_section: number[] } {
  const key = f.has('rope_scaling') ? 'rope_scaling' : 'rope_parameters';
  const p = f.nested(key);
  const type = p.str('rope_type') ?? p.str('type');
  if (type !== undefined && type !== 'mrope' && type !== 'default')
    throw new ModelError(
      `${p.where}: rope type "${type}" is not supported (Qwen2-VL uses M-RoPE: "mrope" or "default")`,
    );
  const rope_theta = p.num('rope_theta') ?? f.num('rope_theta', TEXT_DEFAULTS.rope_theta);
  if (!(rope_theta > 0)) throw new ModelError(`${p.where}: rope_theta must be positive (got ${rope_theta})`);
  const section = p.numList('mrope_section');
  if (section === undefined)
    throw new ModelError(`${p.where}: "mrope_section" is missing (transformers' Qwen2-VL needs it too)`);
  if (!section.length || !section.every((x) => Number.isInteger(x) && x >= 0))
    throw new ModelError(
      `${p.where}: mrope_section [${section.join(', ')}] must be a list of non-negative integers`,
    );
  // Sections read rows t, h, w in turn; what transformers does with a fourth was never checked.
  if (section.length > 3)
    throw new ModelError(
      `${p.where}: mrope_section [${section.join(', ')}] has ${section.length} sections; longshot supports 1 to 3 (t, h, w)`,
    );
  if (section.reduce((a, b) => a + b, 0) !== headDim / 2)
    throw new ModelError(
      `${p.where}: mrope_section [${section.join(', ')}] must sum to head_dim/2 = ${headDim / 2}`,
    );
  return { rope_theta, mrope_section: section };
}

function readVision(f: Fields, source: string): Qwen2VLVisionConfig {
  const V = VISION_DEFAULTS;
  const size = (k: keyof Qwen2VLVisionConfig & string) =>
    positive(source, `vision_config.${k}`, f.int(k, V[k] as number));
  const rope = f.nested('rope_parameters');
  const ropeType = rope.str('rope_type');
  if (ropeType !== undefined && ropeType !== 'axial' && ropeType !== 'default')
    throw new ModelError(
      `${rope.where}: rope type "${ropeType}" is not supported (the vision tower uses 2-D "axial")`,
    );
  return {
    depth: size('depth'),
    embed_dim: size('embed_dim'),
    num_heads: size('num_heads'),
    mlp_ratio: positive(source, 'vision_config.mlp_ratio', f.num('mlp_ratio', V.mlp_ratio)),
    hidden_size: size('hidden_size'),
    patch_size: size('patch_size'),
    temporal_patch_size: size('temporal_patch_size'),
    spatial_merge_size: size('spatial_merge_size'),
    in_channels: size('in_channels'),
    hidden_act: f.str('hidden_act', V.hidden_act),
    rope_theta: positive(
      source,
      'vision_config.rope_parameters.rope_theta',
      rope.num('rope_theta', V.rope_theta),
    ),
  };
}

/** A `vision_config` object alone (a composed family's vision tower, e.g. TSTAR's). */
export function parseQwen2VLVisionConfig(json: unknown, source = 'config.json'): Qwen2VLVisionConfig {
  return readVision(Fields.of(json, `${source}: vision_config`), source);
}

/** Why the vision tower cannot run (null: it can): its 2-D rotary needs an integer head size divisible by 4. */
export function visionTowerProblem(v: Qwen2VLVisionConfig): string | null {
  const head = v.embed_dim / v.num_heads;
  return Number.isInteger(head) && head % 4 === 0
    ? null
    : `vision_config embed_dim ${v.embed_dim} / num_heads ${v.num_heads} is not an integer head size divisible by 4 (2-D rotary)`;
}

/**
 * Why a model of this config cannot take an image or a video (null: it can). transformers builds such a model
 * and runs its text prompts (and images when only the video id is off); the problem shows when pixels arrive.
 */
export function visualInputProblem(c: Qwen2VLConfig, kind: 'image' | 'video'): string | null {
  const tower = visionTowerProblem(c.vision);
  if (tower) return tower;
  if (c.vision.hidden_size !== c.text.hidden_size)
    return `vision_config.hidden_size ${c.vision.hidden_size} (merger output) ≠ hidden_size ${c.text.hidden_size} of the language model`;
  for (const k of [`${kind}_token_id`, 'vision_start_token_id'] as const)
    if (c[k] >= c.text.vocab_size)
      return `${k} ${c[k]} is outside the vocabulary (vocab_size ${c.text.vocab_size}); set it to the tokenizer's id`;
  return null;
}

/** `dtype` (5.x) or `torch_dtype` (4.x), at the top level or, failing that, in text_config; null when absent. */
function readDType(top: Fields, text: Fields): string | null {
  for (const f of text === top ? [top] : [top, text])
    for (const k of ['dtype', 'torch_dtype']) {
      const v = f.str(k);
      if (v !== undefined) return v;
    }
  return null;
}

function readArchitectures(top: Fields, source: string): string[] {
  const a = top.get('architectures');
  if (a === undefined) return [];
  if (!Array.isArray(a) || !a.every((x) => typeof x === 'string'))
    throw new ModelError(`${source}: "architectures" must be a list of class names`);
  return a;
}

function readMixer(
  f: Fields,
  hiddenSize: number,
  source: string,
): { config: VisionMambaMixerConfig; fields: Fields } {
  const M = MAMBA2_DEFAULTS;
  const pair = (k: string, fallback: [number, number]): [number, number] => {
    const raw = f.get(k);
    if (raw === undefined) return fallback;
    // Python writes float('inf') as Infinity, which JSON.parse rejects; configs that round-trip through
    // json.dumps therefore hold a string or a large number there.
    if (!Array.isArray(raw) || raw.length !== 2) throw f.error(k, 'must be a [low, high] pair');
    return raw.map((x) => (x === 'inf' || x === 'Infinity' ? Number.POSITIVE_INFINITY : Number(x))) as [
      number,
      number,
    ];
  };
  const config: VisionMambaMixerConfig = {
    enable: f.bool('enable', M.enable),
    d_state: f.int('d_state', M.d_state),
    d_conv: f.int('d_conv', M.d_conv),
    expand: f.int('expand', M.expand),
    headdim: f.int('headdim', M.headdim),
    ngroups: f.int('ngroups', M.ngroups),
    d_ssm: f.int('d_ssm') ?? M.d_ssm,
    chunk_size: f.int('chunk_size', M.chunk_size),
    rmsnorm: f.bool('rmsnorm', M.rmsnorm),
    norm_before_gate: f.bool('norm_before_gate', M.norm_before_gate),
    D_has_hdim: f.bool('D_has_hdim', M.D_has_hdim),
    bias: f.bool('bias', M.bias),
    conv_bias: f.bool('conv_bias', M.conv_bias),
    dt_min: f.num('dt_min', M.dt_min),
    dt_max: f.num('dt_max', M.dt_max),
    dt_init_floor: f.num('dt_init_floor', M.dt_init_floor),
    dt_limit: pair('dt_limit', M.dt_limit),
    A_init_range: pair('A_init_range', M.A_init_range),
    use_mem_eff_path: f.bool('use_mem_eff_path', M.use_mem_eff_path),
  };
  if (config.enable) {
    const dSsm = config.d_ssm ?? config.expand * hiddenSize;
    if (!config.headdim || dSsm % config.headdim)
      throw new ModelError(
        `${source}: vision_mamba_mixer_config: d_ssm ${dSsm} is not divisible by headdim ${config.headdim}`,
      );
    if (!config.ngroups || (dSsm / config.headdim) % config.ngroups)
      throw new ModelError(
        `${source}: vision_mamba_mixer_config: ${dSsm / config.headdim} heads are not divisible by ngroups ${config.ngroups}`,
      );
    if (!config.d_state || !config.d_conv || !config.chunk_size)
      throw new ModelError(
        `${source}: vision_mamba_mixer_config: d_state, d_conv and chunk_size must be positive`,
      );
  }
  return { config, fields: f };
}

function collectExtra(top: Fields, nested: Record<string, Fields>): JsonObject {
  const extra: JsonObject = {};
  for (const [k, v] of Object.entries(top.unread())) if (!(k in nested)) extra[k] = v;
  for (const [name, f] of Object.entries(nested))
    for (const [k, v] of Object.entries(f.unread())) extra[`${name}.${k}`] = v;
  return extra;
}

/** Reads and parses `<dir>/config.json`. */
export async function readQwen2VLConfig(dir: string): Promise<Qwen2VLConfig> {
  const path = join(dir, 'config.json');
  return parseQwen2VLConfig(await readJsonFile(path), path);
}
