/**
 * Nemotron-H `config.json` (`model_type` "nemotron_h", transformers' `NemotronHConfig`): the block pattern and
 * the sizes of the three mixers. Absent keys take NemotronHConfig's defaults. Both ways of writing the stack
 * are read: the published `hybrid_override_pattern` string (`M` Mamba-2, `*` attention, `-` MLP) and the
 * `layers_block_type` list that transformers 5 saves instead. As in transformers, the legacy `mamba_*` keys
 * (`mamba_n_groups`, `mamba_d_conv`, …) override their new names.
 */
import { join } from 'node:path';
import { ModelError } from '../../errors.js';
import { Fields, type JsonObject, readJsonFile } from '../../io/json-fields.js';
import { activation } from '../../nn/activation.js';

/** One pattern character per block. `E` (MoE) exists in transformers but not here. */
export type BlockChar = 'M' | '*' | '-';

const BLOCK_NAMES: Record<BlockChar, string> = { M: 'Mamba-2', '*': 'attention', '-': 'MLP' };

/** transformers' `layers_block_type` spellings (both 5.x generations) → pattern characters. */
const LIST_NAMES: Record<string, BlockChar | 'E'> = {
  mamba: 'M',
  linear_attention: 'M',
  attention: '*',
  full_attention: '*',
  mlp: '-',
  moe: 'E',
};

export interface NemotronHConfig {
  model_type: string;
  architectures: string[];
  /** `torch_dtype` or `dtype`; null when absent. */
  dtype: string | null;
  vocab_size: number;
  hidden_size: number;
  /** One character per block; its length is the number of layers. */
  hybrid_override_pattern: string;
  /** Read but unused: transformers never ties NemotronH's lm_head (`_tied_weights_keys = {}`). */
  tie_word_embeddings: boolean;
  layer_norm_epsilon: number;
  /** Keep the residual stream in f32 whatever the weights' dtype. */
  residual_in_fp32: boolean;
  // attention blocks
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  /** Read but unused: transformers' NemotronHAttention builds q/k/v/o without biases whatever it says. */
  attention_bias: boolean;
  attention_dropout: number;
  max_position_embeddings: number;
  sliding_window: number | null;
  // MLP blocks
  intermediate_size: number;
  mlp_hidden_act: string;
  mlp_bias: boolean;
  // Mamba-2 blocks (intermediate size = mamba_num_heads · mamba_head_dim; `expand` is not used for it)
  ssm_state_size: number;
  mamba_num_heads: number;
  mamba_head_dim: number;
  mamba_hidden_act: string;
  n_groups: number;
  conv_kernel: number;
  expand: number;
  chunk_size: number;
  /** dt is clamped to [low, high] after the softplus; (0, ∞) is no clamp. */
  time_step_limit: [number, number];
  time_step_min: number;
  time_step_max: number;
  time_step_floor: number;
  use_conv_bias: boolean;
  /** in_proj / out_proj biases. */
  use_bias: boolean;
  mamba_proj_bias: boolean;
  mamba_ssm_cache_dtype: string;
  // training and runtime switches, read for completeness
  rescale_prenorm_residual: boolean;
  initializer_range: number;
  hidden_dropout: number;
  use_cache: boolean;
  use_mamba_kernels: boolean;
  num_logits_to_keep: number | null;
  bos_token_id: number | null;
  /** Always a list (configs store an int or a list). */
  eos_token_id: number[];
  pad_token_id: number | null;
  /** Keys this parser does not interpret, kept verbatim. */
  extra: JsonObject;
}

/** transformers 5 name → its legacy key (the legacy one wins when both are present, as in transformers). */
const LEGACY: Record<string, string> = {
  n_groups: 'mamba_n_groups',
  conv_kernel: 'mamba_d_conv',
  expand: 'mamba_expand',
  time_step_min: 'mamba_dt_min',
  time_step_max: 'mamba_dt_max',
  time_step_limit: 'mamba_dt_limit',
  time_step_floor: 'mamba_dt_init_floor',
  use_conv_bias: 'mamba_conv_bias',
  chunk_size: 'mamba_chunk_size',
};

/** Parses a config.json object. `source` names the file in errors. */
export function parseNemotronHConfig(json: unknown, source = 'config.json'): NemotronHConfig {
  const f = Fields.of(json, source);
  const modelType = f.str('model_type', 'nemotron_h');
  if (modelType !== 'nemotron_h')
    throw new ModelError(
      `${source}: model_type "${modelType}" is not a Nemotron-H config (expected "nemotron_h")`,
    );
  // The legacy spelling when present, else the new one.
  const key = (k: string) => (k in LEGACY && f.has(LEGACY[k]) ? LEGACY[k] : k);
  const int = (k: string, d: number) => f.int(key(k), d);
  const num = (k: string, d: number) => f.num(key(k), d);
  const bool = (k: string, d: boolean) => f.bool(key(k), d);
  const str = (k: string, d: string) => f.str(key(k), d);
  // Keys whose JSON null means "none" (absent means the default).
  const nullableInt = (k: string, d: number | null) => f.int(k) ?? (f.obj[k] === null ? null : d);

  const pattern = readPattern(f, source);
  const config: NemotronHConfig = {
    model_type: modelType,
    architectures: readArchitectures(f, source),
    dtype: f.str('torch_dtype') ?? f.str('dtype') ?? null,
    vocab_size: int('vocab_size', 131072),
    hidden_size: int('hidden_size', 4096),
    hybrid_override_pattern: pattern,
    tie_word_embeddings: bool('tie_word_embeddings', false),
    layer_norm_epsilon: num('layer_norm_epsilon', 1e-5),
    residual_in_fp32: bool('residual_in_fp32', false),
    num_attention_heads: int('num_attention_heads', 32),
    // transformers: null means plain multi-head attention.
    num_key_value_heads:
      f.int('num_key_value_heads') ??
      (f.obj.num_key_value_heads === null ? f.int('num_attention_heads', 32) : 8),
    head_dim: int('head_dim', 128),
    attention_bias: bool('attention_bias', false),
    attention_dropout: num('attention_dropout', 0),
    max_position_embeddings: int('max_position_embeddings', 4096),
    sliding_window: nullableInt('sliding_window', null),
    intermediate_size: int('intermediate_size', 21504),
    mlp_hidden_act: str('mlp_hidden_act', 'relu2'),
    mlp_bias: bool('mlp_bias', false),
    ssm_state_size: int('ssm_state_size', 128),
    mamba_num_heads: int('mamba_num_heads', 128),
    mamba_head_dim: int('mamba_head_dim', 64),
    mamba_hidden_act: str('mamba_hidden_act', 'silu'),
    n_groups: int('n_groups', 8),
    conv_kernel: int('conv_kernel', 4),
    expand: int('expand', 2),
    chunk_size: int('chunk_size', 128),
    time_step_limit: readTimeStepLimit(f, key('time_step_limit')),
    time_step_min: num('time_step_min', 0.001),
    time_step_max: num('time_step_max', 0.1),
    time_step_floor: num('time_step_floor', 1e-4),
    use_conv_bias: bool('use_conv_bias', true),
    use_bias: bool('use_bias', false),
    mamba_proj_bias: bool('mamba_proj_bias', false),
    mamba_ssm_cache_dtype: str('mamba_ssm_cache_dtype', 'float32'),
    rescale_prenorm_residual: bool('rescale_prenorm_residual', true),
    initializer_range: num('initializer_range', 0.02),
    hidden_dropout: num('hidden_dropout', 0),
    use_cache: bool('use_cache', true),
    use_mamba_kernels: bool('use_mamba_kernels', true),
    num_logits_to_keep: nullableInt('num_logits_to_keep', 1),
    bos_token_id: nullableInt('bos_token_id', 1),
    eos_token_id: f.intOrList('eos_token_id') ?? (f.obj.eos_token_id === null ? [] : [2]),
    pad_token_id: nullableInt('pad_token_id', 0),
    extra: {},
  };
  // A name shadowed by its legacy key is not an extra either.
  for (const k of Object.entries(LEGACY).flat()) f.get(k);
  validate(config, f, source);
  config.extra = f.unread();
  return config;
}

/**
 * The stack from `hybrid_override_pattern` or `layers_block_type` (they must agree when both are given), checked
 * against `num_hidden_layers`.
 */
function readPattern(f: Fields, source: string): string {
  const text = f.str('hybrid_override_pattern');
  const list = f.get('layers_block_type') ?? f.get('layer_types');
  let fromList: string | undefined;
  if (list !== undefined) {
    if (!Array.isArray(list) || !list.every((x) => typeof x === 'string'))
      throw f.error('layers_block_type', 'must be a list of block type names');
    const unknown = list.filter((x) => !(x in LIST_NAMES));
    if (unknown.length)
      throw f.error(
        'layers_block_type',
        `has unknown block types ${[...new Set(unknown)].map((x) => `"${x}"`).join(', ')} (known: ${Object.keys(LIST_NAMES).join(', ')})`,
      );
    fromList = list.map((x) => LIST_NAMES[x]).join('');
  }
  if (text !== undefined && fromList !== undefined && text !== fromList)
    throw new ModelError(
      `${source}: hybrid_override_pattern "${text}" contradicts layers_block_type (pattern "${fromList}")`,
    );
  const pattern = text ?? fromList;
  if (pattern === undefined)
    throw new ModelError(
      `${source}: neither "hybrid_override_pattern" nor "layers_block_type" is given; the block stack is unknown`,
    );
  if (!pattern.length)
    throw f.error('hybrid_override_pattern', 'is empty (a model needs at least one block)');
  const bad = [...pattern].map((ch, i) => ({ ch, i })).filter(({ ch }) => !(ch in BLOCK_NAMES));
  if (bad.length) {
    const shown = bad
      .slice(0, 8)
      .map(({ ch, i }) => `"${ch}"${ch === 'E' ? ' (MoE)' : ''} at layer ${i}`)
      .join(', ');
    throw new ModelError(
      `${source}: hybrid_override_pattern has unsupported block characters: ${shown}${bad.length > 8 ? ', …' : ''}` +
        ` (supported: ${Object.entries(BLOCK_NAMES)
          .map(([ch, name]) => `${ch} = ${name}`)
          .join(', ')})`,
    );
  }
  const layers = f.int('num_hidden_layers');
  if (layers !== undefined && layers !== pattern.length)
    throw new ModelError(
      `${source}: num_hidden_layers is ${layers} but the block pattern has ${pattern.length} layers`,
    );
  return pattern;
}

/** A Python float as config files write it: a number (Infinity when read by parsePythonJson), "inf", or {"__float__": "Infinity"}. */
function pyFloat(v: unknown): number {
  if (typeof v === 'number') return v;
  const s = typeof v === 'string' ? v : (v as { __float__?: unknown } | null)?.__float__;
  if (typeof s === 'string') {
    const m = /^([+-]?)(inf|infinity)$/i.exec(s.trim());
    if (m) return m[1] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
    if (s.trim() !== '' && Number.isFinite(Number(s))) return Number(s);
  }
  return Number.NaN;
}

/** `time_step_limit` (dt clamp after the softplus) as Mamba-2 configs write it; absent: (0, ∞). */
export function readTimeStepLimit(f: Fields, k: string): [number, number] {
  const raw = f.get(k);
  if (raw === undefined) return [0, Number.POSITIVE_INFINITY];
  const pair = Array.isArray(raw) && raw.length === 2 ? raw.map(pyFloat) : [];
  if (pair.length !== 2 || pair.some(Number.isNaN) || pair[0] < 0 || pair[0] > pair[1])
    throw f.error(k, `must be a [low, high] pair with 0 ≤ low ≤ high (got ${JSON.stringify(raw)})`);
  return pair as [number, number];
}

function readArchitectures(f: Fields, source: string): string[] {
  const a = f.get('architectures');
  if (a === undefined) return [];
  if (!Array.isArray(a) || !a.every((x) => typeof x === 'string'))
    throw new ModelError(`${source}: "architectures" must be a list of class names`);
  return a;
}

function validate(c: NemotronHConfig, f: Fields, source: string): void {
  const census = layerCensus(c);
  const positive: (keyof NemotronHConfig)[] = ['vocab_size', 'hidden_size'];
  if (census.attention) positive.push('num_attention_heads', 'num_key_value_heads', 'head_dim');
  if (census.mlp) positive.push('intermediate_size');
  if (census.mamba)
    positive.push(
      'ssm_state_size',
      'mamba_num_heads',
      'mamba_head_dim',
      'n_groups',
      'conv_kernel',
      'chunk_size',
    );
  for (const k of positive)
    if (!((c[k] as number) > 0)) throw new ModelError(`${source}: ${k} must be positive (got ${c[k]})`);
  if (!(c.layer_norm_epsilon > 0))
    throw new ModelError(`${source}: layer_norm_epsilon must be positive (got ${c.layer_norm_epsilon})`);
  if (census.attention && c.num_attention_heads % c.num_key_value_heads)
    throw new ModelError(
      `${source}: num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${c.num_key_value_heads}`,
    );
  if (census.mamba && c.mamba_num_heads % c.n_groups)
    throw new ModelError(
      `${source}: mamba_num_heads ${c.mamba_num_heads} is not a multiple of n_groups ${c.n_groups}`,
    );
  if (census.mamba && c.mamba_hidden_act !== 'silu' && c.mamba_hidden_act !== 'swish')
    throw f.error('mamba_hidden_act', `"${c.mamba_hidden_act}" is not supported (Mamba-2 uses silu)`);
  if (census.mlp)
    try {
      activation(c.mlp_hidden_act);
    } catch (e) {
      throw f.error('mlp_hidden_act', (e as Error).message);
    }
  for (const id of [c.bos_token_id, c.pad_token_id, ...c.eos_token_id])
    if (id !== null && id >= c.vocab_size)
      throw new ModelError(
        `${source}: token id ${id} is outside the vocabulary (vocab_size ${c.vocab_size})`,
      );
}

/** Blocks of each kind in the stack. */
export function layerCensus(c: Pick<NemotronHConfig, 'hybrid_override_pattern'>): {
  mamba: number;
  attention: number;
  mlp: number;
} {
  const n = (ch: BlockChar) => [...c.hybrid_override_pattern].filter((x) => x === ch).length;
  return { mamba: n('M'), attention: n('*'), mlp: n('-') };
}

/** Reads and parses `<dir>/config.json`. */
export async function readNemotronHConfig(dir: string): Promise<NemotronHConfig> {
  const path = join(dir, 'config.json');
  return parseNemotronHConfig(await readJsonFile(path), path);
}
