/**
 * Builds a Vamba checkpoint in the official layout from a Qwen2-VL checkpoint, as Vamba's stage-1 training
 * starts (research/vamba.md §5.2): every Qwen2-VL tensor copied unchanged; each layer's cross-attention
 * initialised from the same layer's self-attention (`--init_cross_attn_weights_from_self_attn`, the paper's
 * crucial finding); the Mamba-2 blocks with mamba_ssm's initialisation; α = 0.5.
 *
 * mamba_ssm `Mamba2.__init__`: in_proj/out_proj and conv1d keep PyTorch's default init (kaiming-uniform with
 * a = √5, i.e. U(±1/√fan_in), conv bias U(±1/√fan_in)); A_log = log U(A_init_range); dt_bias = softplus⁻¹(dt)
 * with dt log-uniform in [dt_min, dt_max] floored at dt_init_floor; D = 1; the gated norm's weight = 1 (as is
 * the block's pre-norm).
 *
 * Written streamed: each output tensor is read or generated only when its turn to be written comes.
 */
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, ModelError } from '../../errors.js';
import { Checkpoint, INDEX_FILE } from '../../io/checkpoint.js';
import type { HostTensor } from '../../io/convert.js';
import type { SafetensorsDType } from '../../io/safetensors-format.js';
import type { LazyEntry } from '../../io/safetensors-write.js';
import { type ShardedResult, writeShardedCheckpoint } from '../../io/sharded-write.js';
import { diffParams, numelOf } from '../../nn/params.js';
import { type DType, fromF32 } from '../../runtime/dtype.js';
import { seededUniform } from '../../util/random.js';
import { MAMBA2_DEFAULTS, parseQwen2VLConfig, type Qwen2VLConfig } from '../qwen2vl/config.js';
import { canonicalName, qwen2vlSpecs } from '../qwen2vl/weights.js';
import { isVambaConfig } from './config.js';
import { vambaSpecs } from './weights.js';

export interface ConvertOptions {
  /** Seed of the Mamba initialisation (default 0): the same seed gives the same checkpoint. */
  seed?: number;
  /** Largest shard in bytes (default 5 GB, as Hugging Face); one shard is written as model.safetensors. */
  shardBytes?: number;
  /** Initial α of every layer (default 0.5, as `nn.Parameter(0.5 * torch.ones(1))`). */
  alpha?: number;
  /** Called after each tensor is written. */
  onProgress?: (written: number, total: number) => void;
}

export type ConvertResult = ShardedResult;

const RUNTIME_OF: Partial<Record<SafetensorsDType, DType>> = { F32: 'f32', BF16: 'bf16', F16: 'f16' };

/** The config.json of the converted model: the source's, plus the Vamba fields (mixer fields written out). */
export function vambaConfigJson(source: Record<string, unknown>): Record<string, unknown> {
  const m = MAMBA2_DEFAULTS;
  return {
    ...source,
    use_alpha_balancing: true,
    cross_attn_use_position_embeddings: false,
    cross_attn_use_layer_norm: false,
    distill_coeff: 0.0,
    vision_mamba_mixer_config: {
      enable: true,
      d_state: m.d_state,
      d_conv: m.d_conv,
      expand: m.expand,
      headdim: m.headdim,
      ngroups: m.ngroups,
      chunk_size: m.chunk_size,
      rmsnorm: m.rmsnorm,
      norm_before_gate: m.norm_before_gate,
      D_has_hdim: m.D_has_hdim,
      bias: m.bias,
      conv_bias: m.conv_bias,
      dt_min: m.dt_min,
      dt_max: m.dt_max,
      dt_init_floor: m.dt_init_floor,
      A_init_range: m.A_init_range,
    },
  };
}

export async function convertQwen2VLToVamba(
  srcDir: string,
  outDir: string,
  opts: ConvertOptions = {},
): Promise<ConvertResult> {
  const sourceJson = JSON.parse(
    await readFile(join(srcDir, 'config.json'), 'utf8').catch((e) => {
      throw new ModelError(`${srcDir}: no readable config.json (${(e as Error).message})`);
    }),
  ) as Record<string, unknown>;
  const source = parseQwen2VLConfig(sourceJson, join(srcDir, 'config.json'));
  if (isVambaConfig(source))
    throw new InputError(`${srcDir} is already a Vamba checkpoint; nothing to convert`);
  const outJson = vambaConfigJson(sourceJson);
  const config = parseQwen2VLConfig(outJson);
  const shardBytes = opts.shardBytes ?? 5_000_000_000;
  if (!(shardBytes > 0)) throw new InputError(`shard size must be positive (got ${shardBytes})`);

  const checkpoint = await Checkpoint.open(srcDir);
  try {
    const original = new Map<string, string>();
    for (const n of checkpoint.names()) original.set(canonicalName(n), n);
    const found = new Map([...original].map(([canon, n]) => [canon, checkpoint.info(n).shape] as const));
    const diff = diffParams(qwen2vlSpecs(source), found);
    if (diff) throw new ModelError(`${srcDir}: not a complete Qwen2-VL checkpoint: ${diff}`);
    const embedDtype = checkpoint.info(original.get('model.embed_tokens.weight')!).dtype;
    const newDtype = RUNTIME_OF[embedDtype] ? embedDtype : 'F32';

    const init = new MambaInit(config, opts.seed ?? 0, opts.alpha ?? 0.5);
    const entries: Array<[string, LazyEntry]> = vambaSpecs(config).map((spec) => {
      const copyOf = /^model\.layers\.\d+\.cross_attn\./.test(spec.name)
        ? spec.name.replace('.cross_attn.', '.self_attn.')
        : original.has(spec.name)
          ? spec.name
          : null;
      if (copyOf) {
        const name = original.get(copyOf)!;
        return [
          spec.name,
          { dtype: checkpoint.info(name).dtype, shape: spec.shape, load: () => checkpoint.read(name) },
        ];
      }
      return [
        spec.name,
        { dtype: newDtype, shape: spec.shape, load: async () => init.make(spec.name, spec.shape, newDtype) },
      ];
    });

    const result = await writeShardedCheckpoint(outDir, entries, shardBytes, opts.onProgress);
    await writeFile(join(outDir, 'config.json'), `${JSON.stringify(outJson, null, 2)}\n`);
    // Tokenizer, processor and generation files come along unchanged.
    for (const f of await readdir(srcDir))
      if (
        !f.endsWith('.safetensors') &&
        f !== INDEX_FILE &&
        f !== 'config.json' &&
        /\.(json|txt|model|jinja)$/.test(f)
      )
        await copyFile(join(srcDir, f), join(outDir, f));
    return result;
  } finally {
    await checkpoint.close();
  }
}

/** The new tensors of a Vamba layer, drawn from one seeded stream in the order they are written. */
export class MambaInit {
  readonly #u: () => number;
  constructor(
    readonly config: Qwen2VLConfig,
    seed: number,
    readonly alpha: number,
  ) {
    this.#u = seededUniform(seed);
  }

  make(name: string, shape: readonly number[], dtype: SafetensorsDType): HostTensor {
    const m = this.config.vision_mamba_mixer_config;
    const n = numelOf(shape);
    const v = new Float32Array(n);
    const u = this.#u;
    const uniform = (bound: number) => {
      for (let i = 0; i < n; i++) v[i] = (2 * u() - 1) * bound;
    };
    const leaf = name.slice(name.lastIndexOf('layers.') + 'layers.'.length).replace(/^\d+\./, '');
    switch (leaf) {
      case 'alpha':
        v.fill(this.alpha);
        break;
      case 'vision_mixer.norm.weight':
      case 'vision_mixer.mixer.norm.weight':
      case 'vision_mixer.mixer.D':
        v.fill(1);
        break;
      case 'vision_mixer.mixer.in_proj.weight':
      case 'vision_mixer.mixer.out_proj.weight':
        uniform(1 / Math.sqrt(shape[1]));
        break;
      case 'vision_mixer.mixer.conv1d.weight':
      case 'vision_mixer.mixer.conv1d.bias':
        uniform(1 / Math.sqrt(m.d_conv)); // fan_in of a depthwise conv = 1 · kernel
        break;
      case 'vision_mixer.mixer.A_log': {
        const [lo, hi] = m.A_init_range;
        for (let i = 0; i < n; i++) v[i] = Math.log(lo + (hi - lo) * u());
        break;
      }
      case 'vision_mixer.mixer.dt_bias':
        for (let i = 0; i < n; i++) {
          const logDt = Math.log(m.dt_min) + u() * (Math.log(m.dt_max) - Math.log(m.dt_min));
          const dt = Math.max(Math.exp(logDt), m.dt_init_floor);
          v[i] = dt + Math.log(-Math.expm1(-dt)); // softplus⁻¹(dt)
        }
        break;
      default:
        throw new ModelError(`Vamba conversion: no initialisation for new tensor "${name}"`);
    }
    const raw = fromF32(RUNTIME_OF[dtype]!, v);
    return { dtype, shape, data: raw as HostTensor['data'] };
  }
}
