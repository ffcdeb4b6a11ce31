/**
 * The SigLIP vision transformer: a P×P patch embedding (a strided conv, run as a Linear over flattened patches)
 * plus learned position embeddings, then pre-norm blocks (LayerNorm → attention over one image's patches →
 * LayerNorm → MLP), no class token. It returns the output of a chosen block without the final norm, as
 * TimeViper reads it (timm's `get_intermediate_layers`; transformers' `hidden_states[block + 1]`).
 */
import { InputError, ModelError } from '../../errors.js';
import { Linear } from '../../nn/linear.js';
import { MLP } from '../../nn/mlp.js';
import { LayerNorm } from '../../nn/norm.js';
import type { ParamSpec, ParamStore } from '../../nn/params.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import { patchGrid, type SiglipLayout, type SiglipVisionConfig } from './config.js';

/** Parameter names of each layout (timm `VisionTransformer`, transformers `SiglipVisionModel`). */
const NAMES = {
  timm: {
    patch: 'patch_embed.proj',
    pos: 'pos_embed',
    block: (i: number) => `blocks.${i}`,
    norm1: 'norm1',
    norm2: 'norm2',
    proj: 'attn.proj',
    mlp: 'mlp',
    /** Parameters the features never use: the final norm and the attention-pool head. */
    unused: (name: string) => name.startsWith('norm.') || name.startsWith('attn_pool.'),
  },
  hf: {
    patch: 'vision_model.embeddings.patch_embedding',
    pos: 'vision_model.embeddings.position_embedding.weight',
    block: (i: number) => `vision_model.encoder.layers.${i}`,
    norm1: 'layer_norm1',
    norm2: 'layer_norm2',
    proj: 'self_attn.out_proj',
    mlp: 'mlp',
    unused: (name: string) =>
      name.startsWith('vision_model.post_layernorm.') || name.startsWith('vision_model.head.'),
  },
} as const;

/** Which layout a set of tensor names (after `prefix`) is in, or null for neither. */
export function siglipLayoutOf(names: Iterable<string>, prefix = ''): SiglipLayout | null {
  for (const n of names) {
    if (n === `${prefix}${NAMES.timm.patch}.weight`) return 'timm';
    if (n === `${prefix}${NAMES.hf.patch}.weight`) return 'hf';
  }
  return null;
}

/** Whether a tensor (after `prefix`) is one the features do not use (final norm, pooling head, later blocks). */
export function siglipUnused(name: string, layout: SiglipLayout, outputBlock: number): boolean {
  if (NAMES[layout].unused(name)) return true;
  const m = /(?:^blocks|encoder\.layers)\.(\d+)\./.exec(name);
  return m !== null && Number(m[1]) > outputBlock;
}

/** The index of the block whose output is the feature (negative counts from the end: −2 is TimeViper's). */
export function resolveBlock(c: SiglipVisionConfig, block: number): number {
  const b = block < 0 ? c.num_hidden_layers + block : block;
  if (!Number.isInteger(b) || b < 0 || b >= c.num_hidden_layers)
    throw new ModelError(`SigLIP: block ${block} does not exist in a ${c.num_hidden_layers}-block tower`);
  return b;
}

/** The parameters blocks 0..outputBlock read, in `layout` under `prefix`. */
export function siglipSpecs(
  c: SiglipVisionConfig,
  layout: SiglipLayout,
  outputBlock: number,
  prefix = '',
): ParamSpec[] {
  const n = NAMES[layout];
  const d = c.hidden_size;
  const { tokens } = patchGrid(c);
  const s: ParamSpec[] = [
    { name: `${prefix}${n.patch}.weight`, shape: [d, c.num_channels, c.patch_size, c.patch_size] },
    { name: `${prefix}${n.patch}.bias`, shape: [d] },
    { name: `${prefix}${n.pos}`, shape: layout === 'timm' ? [1, tokens, d] : [tokens, d] },
  ];
  for (let i = 0; i <= outputBlock; i++) {
    const b = `${prefix}${n.block(i)}`;
    s.push(...LayerNorm.specs(`${b}.${n.norm1}`, d));
    if (layout === 'timm') s.push(...Linear.specs(`${b}.attn.qkv`, d, 3 * d, true));
    else
      for (const p of ['q_proj', 'k_proj', 'v_proj'])
        s.push(...Linear.specs(`${b}.self_attn.${p}`, d, d, true));
    s.push(...Linear.specs(`${b}.${n.proj}`, d, d, true));
    s.push(...LayerNorm.specs(`${b}.${n.norm2}`, d));
    s.push(...MLP.specs(`${b}.${n.mlp}`, d, c.intermediate_size));
  }
  return s;
}

class SiglipAttention implements Disposable {
  constructor(
    readonly q: Linear,
    readonly k: Linear,
    readonly v: Linear,
    readonly proj: Linear,
    readonly heads: number,
  ) {}

  /** x [images, tokens, C]: each image's tokens attend to each other (the batch axis keeps images apart). */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [b, n, d] = x.shape;
      const [q, k, v] = [this.q, this.k, this.v].map((l) =>
        l.forward(x).reshape([b, n, this.heads, d / this.heads]),
      );
      return this.proj.forward(ops.attention(q, k, v).out.reshape([b, n, d]));
    });
  }

  [Symbol.dispose](): void {
    for (const l of new Set([this.q, this.k, this.v, this.proj])) l[Symbol.dispose]();
  }
}

class SiglipBlock implements Disposable {
  constructor(
    readonly norm1: LayerNorm,
    readonly attn: SiglipAttention,
    readonly norm2: LayerNorm,
    readonly mlp: MLP,
  ) {}

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = ops.add(x, this.attn.forward(this.norm1.forward(x)));
      return ops.add(h, this.mlp.forward(this.norm2.forward(h)));
    });
  }

  [Symbol.dispose](): void {
    for (const m of [this.norm1, this.attn, this.norm2, this.mlp]) m[Symbol.dispose]();
  }
}

export class SiglipVision implements Disposable {
  constructor(
    readonly config: SiglipVisionConfig,
    readonly patch: Linear,
    readonly pos: Tensor,
    readonly blocks: SiglipBlock[],
  ) {}

  /** Blocks 0..outputBlock of a tower in `layout` under `prefix` (the store may hold the unused rest). */
  static load(
    p: ParamStore,
    c: SiglipVisionConfig,
    layout: SiglipLayout,
    outputBlock: number,
    prefix = '',
  ): SiglipVision {
    const n = NAMES[layout];
    const d = c.hidden_size;
    const eps = c.layer_norm_eps;
    const patchWeight = p.take(`${prefix}${n.patch}.weight`);
    const patch = new Linear(patchWeight.reshape([d, -1]), p.take(`${prefix}${n.patch}.bias`));
    patchWeight.dispose();
    const posRaw = p.take(`${prefix}${n.pos}`);
    const pos = posRaw.reshape([patchGrid(c).tokens, d]);
    posRaw.dispose();
    const blocks: SiglipBlock[] = [];
    for (let i = 0; i <= outputBlock; i++) {
      const b = `${prefix}${n.block(i)}`;
      let qkv: [Linear, Linear, Linear];
      if (layout === 'timm') {
        const fused = Linear.load(p, `${b}.attn.qkv`, true);
        qkv = [fused.rows(0, d), fused.rows(d, 2 * d), fused.rows(2 * d, 3 * d)];
        fused[Symbol.dispose](); // the row views keep the memory
      } else {
        qkv = [
          Linear.load(p, `${b}.self_attn.q_proj`, true),
          Linear.load(p, `${b}.self_attn.k_proj`, true),
          Linear.load(p, `${b}.self_attn.v_proj`, true),
        ];
      }
      blocks.push(
        new SiglipBlock(
          LayerNorm.load(p, `${b}.${n.norm1}`, eps),
          new SiglipAttention(...qkv, Linear.load(p, `${b}.${n.proj}`, true), c.num_attention_heads),
          LayerNorm.load(p, `${b}.${n.norm2}`, eps),
          MLP.load(p, `${b}.${n.mlp}`, c.hidden_act),
        ),
      );
    }
    return new SiglipVision(c, patch, pos, blocks);
  }

  /**
   * pixels [images, channels, size, size] (normalised) → the output block's features [images, tokens, C], in
   * the weights' dtype.
   */
  forward(pixels: Tensor): Tensor {
    const c = this.config;
    const { side, tokens } = patchGrid(c);
    const P = c.patch_size;
    const [t, ch, h, w] = pixels.shape;
    if (pixels.rank !== 4 || ch !== c.num_channels || h !== c.image_size || w !== c.image_size)
      throw new InputError(
        `SigLIP: pixel values [${pixels.shape.join(', ')}] are not [images, ${c.num_channels}, ${c.image_size}, ${c.image_size}]`,
      );
    return tidy(() => {
      // Patches as rows of (channel, row, column) values: the conv's weight layout. A side not a multiple of P
      // loses its last pixels, as the strided conv does.
      const cropped = side * P === h ? pixels : ops.slice(ops.slice(pixels, 2, 0, side * P), 3, 0, side * P);
      const rows = ops
        .permute(cropped.reshape([t, ch, side, P, side, P]), [0, 2, 4, 1, 3, 5])
        .reshape([t, tokens, ch * P * P]);
      let x = ops.add(this.patch.forward(ops.cast(rows, this.pos.dtype)), this.pos);
      for (const block of this.blocks) {
        const next = block.forward(x);
        x.dispose();
        x = next;
      }
      return x;
    });
  }

  [Symbol.dispose](): void {
    this.patch[Symbol.dispose]();
    this.pos.dispose();
    for (const b of this.blocks) b[Symbol.dispose]();
  }
}
