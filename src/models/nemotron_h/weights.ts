/**
 * Nemotron-H parameter names and shapes as transformers and the published checkpoints write them
 * (`backbone.embeddings`, `backbone.layers.N.{norm, mixer.…}`, `backbone.norm_f`, `lm_head`), and loading a
 * checkpoint against them. The multi-token-prediction head some checkpoints carry (`mtp.*`) is not part of the
 * model and is skipped, as transformers does.
 */
import { ModelError } from '../../errors.js';
import type { TensorSource } from '../../io/safetensors.js';
import { Linear } from '../../nn/linear.js';
import { RMSNorm } from '../../nn/norm.js';
import { countParams, diffParams, type ParamSpec, ParamStore } from '../../nn/params.js';
import type { Backend } from '../../runtime/backend.js';
import type { DType } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
import { NemotronHBlock } from './block.js';
import type { BlockChar, NemotronHConfig } from './config.js';

export const EMBEDDINGS = 'backbone.embeddings.weight';
const SKIPPED = /^mtp\./;

export function nemotronHSpecs(c: NemotronHConfig): ParamSpec[] {
  const specs: ParamSpec[] = [{ name: EMBEDDINGS, shape: [c.vocab_size, c.hidden_size] }];
  [...c.hybrid_override_pattern].forEach((ch, i) => {
    specs.push(...NemotronHBlock.specs(`backbone.layers.${i}`, ch as BlockChar, c));
  });
  specs.push(...RMSNorm.specs('backbone.norm_f', c.hidden_size));
  // Never tied, whatever tie_word_embeddings says (transformers' NemotronH declares no tied weights).
  specs.push(...Linear.specs('lm_head', c.hidden_size, c.vocab_size, false));
  return specs;
}

/** Parameters of the model `c` describes (8,888,227,328 for NVIDIA-Nemotron-Nano-9B-v2). */
export const nemotronHParamCount = (c: NemotronHConfig): number => countParams(nemotronHSpecs(c));

/**
 * Loads every parameter from `source` onto `backend` as `dtype` after checking names and shapes against the
 * config; a missing, unexpected or misshapen tensor is a ModelError listing them.
 */
export async function loadNemotronHParams(
  source: TensorSource,
  c: NemotronHConfig,
  backend: Backend,
  dtype: DType,
  where: string,
): Promise<ParamStore> {
  const specs = nemotronHSpecs(c);
  const found = new Map<string, readonly number[]>();
  for (const name of source.names()) {
    if (SKIPPED.test(name)) continue;
    found.set(name, source.info(name).shape);
  }
  const diff = diffParams(specs, found);
  if (diff) throw new ModelError(`${where}: the weights do not match config.json (Nemotron-H): ${diff}`);
  const tensors = new Map<string, Tensor>();
  try {
    for (const s of specs) tensors.set(s.name, await source.loadTensor(backend, s.name, { dtype }));
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return new ParamStore(tensors);
}
