/**
 * Qwen2-VL `config.json` (and Vamba's, which is the same class plus five fields) normalised from either
 * layout found on the hub:
 *  - transformers 4.x, flat: text keys at the top level, `rope_theta`, `rope_scaling: {type: "mrope",
 *    mrope_section}`, and a `vision_config` that often holds only a few keys;
 *  - transformers 5.x, nested: `text_config` (with `rope_parameters: {rope_theta, mrope_section}`) and
 *    `vision_config`; token ids stay at the top.
 * Absent keys take the Qwen2-VL-7B values (research/vamba.md §1.1–1.2). Those are deliberately not the HF
 * `Qwen2VLConfig` class defaults, which are the 72B text sizes; the vision class defaults are 7B's.
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
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  /** M-RoPE split of head_dim/2 rotary frequencies into (t, h, w). */
  mrope_section: [number, number, number];
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  hidden_act: string;
  attention_dropout: number;
  use_sliding_window: boolean;
  sliding_window: number;
  max_window_layers: number;
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

/** Qwen2-VL-7B(-Instruct) values, used for absent keys. */
export const QWEN2VL_7B_TEXT: Readonly<Qwen2VLTextConfig> = {
  vocab_size: 152064,
  hidden_size: 3584,
  intermediate_size: 18944,
  num_hidden_layers: 28,
  num_attention_heads: 28,
  num_key_value_heads: 4,
  head_dim: 128,
  rms_norm_eps: 1e-6,
  rope_theta: 1_000_000,
  mrope_section: [16, 24, 24],
  max_position_embeddings: 32768,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  attention_dropout: 0,
  use_sliding_window: false,
  sliding_window: 32768,
  max_window_layers: 28,
};

export const QWEN2VL_7B_VISION: Readonly<Qwen2VLVisionConfig> = {
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
};

export const QWEN2VL_TOKEN_IDS = {
  bos_token_id: 151643,
  eos_token_id: 151645,
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

/**
 * Reads one value that may live in several places (e.g. top level and `text_config`); values that are
 * present must agree.
 */
function agree<T>(
  key: string,
  sources: ReadonlyArray<readonly [Fields, string]>,
  read: (f: Fields, k: string) => T | undefined,
): T | undefined {
  let found: { value: T; where: string } | undefined;
  for (const [f, k] of sources) {
    const value = read(f, k);
    if (value === undefined) continue;
    const where = `${f.where}: ${k}`;
    if (found && JSON.stringify(found.value) !== JSON.stringify(value))
      throw new ModelError(
        `contradictory config: ${found.where} = ${JSON.stringify(found.value)} but ${where} = ${JSON.stringify(value)} (${key})`,
      );
    found ??= { value, where };
  }
  return found?.value;
}

const int = (f: Fields, k: string) => f.int(k);
const num = (f: Fields, k: string) => f.num(k);
const bool = (f: Fields, k: string) => f.bool(k);
const str = (f: Fields, k: string) => f.str(k);

/** Parses a config.json object (either layout). `source` names the file in errors. */
export function parseQwen2VLConfig(json: unknown, source = 'config.json'): Qwen2VLConfig {
  const top = Fields.of(json, source);
  const modelType = top.str('model_type', 'qwen2_vl');
  if (modelType !== 'qwen2_vl')
    throw new ModelError(
      `${source}: model_type "${modelType}" is not a Qwen2-VL / Vamba config (expected "qwen2_vl")`,
    );
  const textF = top.nested('text_config');
  const visF = top.nested('vision_config');
  const both = (k: string) =>
    [
      [top, k],
      [textF, k],
    ] as const;

  // ---- text -----------------------------------------------------------------------------------
  const D = QWEN2VL_7B_TEXT;
  const t = <T>(k: keyof Qwen2VLTextConfig, read: (f: Fields, k: string) => T | undefined, fallback: T): T =>
    agree(k, both(k), read) ?? fallback;
  const hidden_size = t('hidden_size', int, D.hidden_size);
  const num_attention_heads = t('num_attention_heads', int, D.num_attention_heads);
  if (!num_attention_heads || hidden_size % num_attention_heads)
    throw new ModelError(
      `${source}: hidden_size ${hidden_size} is not divisible by num_attention_heads ${num_attention_heads}`,
    );
  const num_key_value_heads = t(
    'num_key_value_heads',
    int,
    num_attention_heads === D.num_attention_heads ? D.num_key_value_heads : num_attention_heads,
  );
  if (!num_key_value_heads || num_attention_heads % num_key_value_heads)
    throw new ModelError(
      `${source}: num_attention_heads ${num_attention_heads} is not a multiple of num_key_value_heads ${num_key_value_heads}`,
    );
  const head_dim = t('head_dim', int, hidden_size / num_attention_heads);
  if (head_dim !== hidden_size / num_attention_heads)
    throw new ModelError(
      `${source}: head_dim ${head_dim} ≠ hidden_size / num_attention_heads = ${hidden_size / num_attention_heads}`,
    );

  const rope = readRope(top, textF, source);
  const mrope_section = (rope.mrope_section ?? D.mrope_section) as [number, number, number];
  if (mrope_section.length !== 3 || mrope_section.reduce((a, b) => a + b, 0) !== head_dim / 2)
    throw new ModelError(
      `${source}: mrope_section [${mrope_section.join(', ')}] must have 3 entries summing to head_dim/2 = ${head_dim / 2}`,
    );
  const text: Qwen2VLTextConfig = {
    vocab_size: t('vocab_size', int, D.vocab_size),
    hidden_size,
    intermediate_size: t('intermediate_size', int, D.intermediate_size),
    num_hidden_layers: t('num_hidden_layers', int, D.num_hidden_layers),
    num_attention_heads,
    num_key_value_heads,
    head_dim,
    rms_norm_eps: t('rms_norm_eps', num, D.rms_norm_eps),
    rope_theta: rope.rope_theta ?? D.rope_theta,
    mrope_section,
    max_position_embeddings: t('max_position_embeddings', int, D.max_position_embeddings),
    tie_word_embeddings: t('tie_word_embeddings', bool, D.tie_word_embeddings),
    hidden_act: t('hidden_act', str, D.hidden_act),
    attention_dropout: t('attention_dropout', num, D.attention_dropout),
    use_sliding_window: t('use_sliding_window', bool, D.use_sliding_window),
    sliding_window: t('sliding_window', int, D.sliding_window),
    max_window_layers: t('max_window_layers', int, D.max_window_layers),
  };
  for (const k of ['vocab_size', 'intermediate_size', 'num_hidden_layers'] as const)
    if (text[k] <= 0) throw new ModelError(`${source}: ${k} must be positive (got ${text[k]})`);
  if (text.rms_norm_eps <= 0 || text.rope_theta <= 0)
    throw new ModelError(`${source}: rms_norm_eps and rope_theta must be positive`);

  // ---- vision ---------------------------------------------------------------------------------
  const V = QWEN2VL_7B_VISION;
  const v = <T>(k: string, read: (f: Fields, k: string) => T | undefined, fallback: T, alias?: string): T =>
    agree(
      k,
      alias
        ? [
            [visF, k],
            [visF, alias],
          ]
        : [[visF, k]],
      read,
    ) ?? fallback;
  const vision: Qwen2VLVisionConfig = {
    depth: v('depth', int, V.depth),
    embed_dim: v('embed_dim', int, V.embed_dim),
    num_heads: v('num_heads', int, V.num_heads),
    mlp_ratio: v('mlp_ratio', num, V.mlp_ratio),
    // The merger must output the LLM width; a config that omits it means exactly that.
    hidden_size: v('hidden_size', int, hidden_size),
    patch_size: v('patch_size', int, V.patch_size, 'spatial_patch_size'),
    temporal_patch_size: v('temporal_patch_size', int, V.temporal_patch_size),
    spatial_merge_size: v('spatial_merge_size', int, V.spatial_merge_size),
    in_channels: v('in_channels', int, V.in_channels, 'in_chans'),
    hidden_act: v('hidden_act', str, V.hidden_act),
  };
  if (!vision.num_heads || vision.embed_dim % vision.num_heads || (vision.embed_dim / vision.num_heads) % 4)
    throw new ModelError(
      `${source}: vision_config embed_dim ${vision.embed_dim} / num_heads ${vision.num_heads} must be an integer head size divisible by 4 (2-D rotary)`,
    );
  if (vision.hidden_size !== hidden_size)
    throw new ModelError(
      `${source}: vision_config.hidden_size ${vision.hidden_size} (merger output) ≠ hidden_size ${hidden_size} of the language model`,
    );
  for (const k of [
    'depth',
    'patch_size',
    'temporal_patch_size',
    'spatial_merge_size',
    'in_channels',
  ] as const)
    if (vision[k] <= 0)
      throw new ModelError(`${source}: vision_config.${k} must be positive (got ${vision[k]})`);

  // ---- token ids ------------------------------------------------------------------------------
  const T = QWEN2VL_TOKEN_IDS;
  const id = (k: keyof typeof T) => agree(k, both(k), int) ?? (T[k] as number);
  const ids = {
    bos_token_id: id('bos_token_id'),
    eos_token_id: agree('eos_token_id', both('eos_token_id'), (f, k) => f.intOrList(k)) ?? [T.eos_token_id],
    pad_token_id: agree('pad_token_id', both('pad_token_id'), int) ?? null,
    vision_start_token_id: id('vision_start_token_id'),
    vision_end_token_id: id('vision_end_token_id'),
    vision_token_id: id('vision_token_id'),
    image_token_id: id('image_token_id'),
    video_token_id: id('video_token_id'),
  };
  for (const [k, val] of Object.entries(ids))
    for (const x of Array.isArray(val) ? val : val === null ? [] : [val])
      if (x >= text.vocab_size)
        throw new ModelError(
          `${source}: ${k} ${x} is outside the vocabulary (vocab_size ${text.vocab_size})`,
        );

  // ---- Vamba ------------------------------------------------------------------------------------
  const mixer = readMixer(top.nested('vision_mamba_mixer_config'), hidden_size, source);
  const config: Qwen2VLConfig = {
    model_type: modelType,
    architectures: readArchitectures(top, source),
    dtype:
      agree(
        'dtype',
        [
          [top, 'torch_dtype'],
          [top, 'dtype'],
          [textF, 'torch_dtype'],
          [textF, 'dtype'],
        ],
        str,
      ) ?? null,
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
    text_config: textF,
    vision_config: visF,
    vision_mamba_mixer_config: mixer.fields,
  });
  return config;
}

function readArchitectures(top: Fields, source: string): string[] {
  const a = top.get('architectures');
  if (a === undefined) return [];
  if (!Array.isArray(a) || !a.every((x) => typeof x === 'string'))
    throw new ModelError(`${source}: "architectures" must be a list of class names`);
  return a;
}

/** rope_theta and mrope_section from rope_parameters (5.x), rope_scaling and rope_theta (4.x). */
function readRope(
  top: Fields,
  textF: Fields,
  source: string,
): { rope_theta?: number; mrope_section?: number[] } {
  const places: Array<readonly [Fields, string]> = [];
  for (const f of [top, textF])
    for (const k of ['rope_parameters', 'rope_scaling']) if (f.has(k)) places.push([f.nested(k), k]);
  for (const [p] of places) {
    const type = p.str('rope_type') ?? p.str('type');
    if (type !== undefined && type !== 'mrope' && type !== 'default')
      throw new ModelError(
        `${p.where}: rope type "${type}" is not supported (Qwen2-VL uses M-RoPE: "mrope" or "default")`,
      );
  }
  const rope_theta = agree(
    'rope_theta',
    [[top, 'rope_theta'], [textF, 'rope_theta'], ...places.map(([p]) => [p, 'rope_theta'] as const)],
    num,
  );
  const mrope_section = agree(
    'mrope_section',
    places.map(([p]) => [p, 'mrope_section'] as const),
    (f, k) => f.numList(k),
  );
  if (mrope_section && !mrope_section.every((x) => Number.isInteger(x) && x > 0))
    throw new ModelError(
      `${source}: mrope_section [${mrope_section.join(', ')}] must hold positive integers`,
    );
  return { rope_theta, mrope_section };
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
