/**
 * Loading a MambaMia compressor's parameters (the derivative's names, under a prefix) from a checkpoint after
 * checking them against the config. The derivative's `model.embeddings.weight` is an empty [0, hidden] table
 * (vocab_size 0) and is skipped.
 */
import { ModelError } from '../../errors.js';
import type { TensorSource } from '../../io/safetensors.js';
import { diffParams, ParamStore } from '../../nn/params.js';
import type { Backend } from '../../runtime/backend.js';
import type { DType } from '../../runtime/dtype.js';
import type { Tensor } from '../../runtime/tensor.js';
import { MambaMiaCompressor } from './compressor.js';
import type { MambaMiaConfig } from './config.js';

/** The compressor under `prefix` ('' or e.g. 'mm_projector.'), loaded as `dtype`; a mismatch is a ModelError. */
export async function loadMambaMiaCompressor(
  source: TensorSource,
  c: MambaMiaConfig,
  prefix: string,
  backend: Backend,
  dtype: DType,
  where: string,
): Promise<MambaMiaCompressor> {
  const specs = MambaMiaCompressor.specs(prefix, c);
  const found = new Map<string, readonly number[]>();
  for (const name of source.names()) {
    if (!name.startsWith(prefix) || name === `${prefix}model.embeddings.weight`) continue;
    found.set(name, source.info(name).shape);
  }
  const diff = diffParams(specs, found);
  if (diff) throw new ModelError(`${where}: the MambaMia weights do not match its config: ${diff}`);
  const tensors = new Map<string, Tensor>();
  try {
    for (const s of specs) tensors.set(s.name, await source.loadTensor(backend, s.name, { dtype }));
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return MambaMiaCompressor.load(new ParamStore(tensors), prefix, c);
}
