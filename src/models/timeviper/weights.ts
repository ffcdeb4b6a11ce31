/**
 * The official TimeViper state-dict layout (one dict for the whole VLM, as `GenericTimeViperVLM` saves and
 * loads it): `vision_backbone.featurizer.*` (timm SigLIP), `projector.projector.{0,2}.*` (the MLP after ToMe),
 * `llm_backbone.llm.backbone.*` and `llm_backbone.llm.lm_head.weight` (Nemotron-H), and with TransV
 * `llm_backbone.llm.backbone.merge_modules.{stage}.{q,k,v,o}_proj.weight` and `llm_backbone.llm.backbone.alpha`.
 * The tower's final norm, pooling head and blocks after the feature block are in the file but unused.
 */
import { ModelError } from '../../errors.js';
import type { TensorSource } from '../../io/safetensors.js';
import { CrossAttention } from '../../nn/cross-attention.js';
import { MLP } from '../../nn/mlp.js';
import { diffParams, type ParamSpec, ParamStore } from '../../nn/params.js';
import type { Backend } from '../../runtime/backend.js';
import type { DType } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
import { attentionConfig } from '../nemotron_h/block.js';
import { nemotronHSpecs } from '../nemotron_h/weights.js';
import { siglipSpecs, siglipUnused } from '../siglip/model.js';
import type { TimeViperConfig } from './config.js';

export const VISION_PREFIX = 'vision_backbone.featurizer.';
export const PROJECTOR = 'projector.projector';
export const LLM_PREFIX = 'llm_backbone.llm.';
export const ALPHA = 'llm_backbone.llm.backbone.alpha';
export const mergeModule = (stage: number): string => `llm_backbone.llm.backbone.merge_modules.${stage}`;

export function timeViperSpecs(c: TimeViperConfig): ParamSpec[] {
  const specs = [
    ...siglipSpecs(c.vision, c.visionLayout, c.featureBlock, VISION_PREFIX),
    ...MLP.specs(PROJECTOR, c.vision.hidden_size, c.llm.hidden_size, c.llm.hidden_size, ['0', '2']),
    ...nemotronHSpecs(c.llm).map((s) => ({ ...s, name: LLM_PREFIX + s.name })),
  ];
  const transfers = c.stages.filter((s) => s.transfer).length;
  c.stages.forEach((s, j) => {
    if (s.transfer) specs.push(...CrossAttention.specs(mergeModule(j), attentionConfig(c.llm)));
  });
  if (transfers) specs.push({ name: ALPHA, shape: [transfers] });
  return specs;
}

/** Whether a checkpoint's tensor names are TimeViper's official layout. */
export const isTimeViperLayout = (names: Iterable<string>): boolean => {
  let vision = false;
  let llm = false;
  for (const n of names) {
    vision ||= n.startsWith(VISION_PREFIX);
    llm ||= n.startsWith(`${LLM_PREFIX}backbone.`);
  }
  return vision && llm;
};

/**
 * Loads what `c` needs from `source` as `dtype` (alpha stays f32), after checking the names and shapes; a
 * missing, unexpected or misshapen tensor is a ModelError listing them.
 */
export async function loadTimeViperParams(
  source: TensorSource,
  c: TimeViperConfig,
  backend: Backend,
  dtype: DType,
  where: string,
): Promise<ParamStore> {
  const specs = timeViperSpecs(c);
  const found = new Map<string, readonly number[]>();
  for (const name of source.names()) {
    if (
      name.startsWith(VISION_PREFIX) &&
      siglipUnused(name.slice(VISION_PREFIX.length), c.visionLayout, c.featureBlock)
    )
      continue;
    if (name.startsWith(`${LLM_PREFIX}mtp.`)) continue;
    found.set(name, source.info(name).shape);
  }
  const diff = diffParams(specs, found);
  if (diff) throw new ModelError(`${where}: the weights do not match config.json (TimeViper): ${diff}`);
  const tensors = new Map<string, Tensor>();
  try {
    for (const s of specs)
      tensors.set(
        s.name,
        await source.loadTensor(backend, s.name, { dtype: s.name === ALPHA ? 'f32' : dtype }),
      );
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return new ParamStore(tensors);
}
