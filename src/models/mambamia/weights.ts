/**
 * Loading a MambaMia compressor's parameters (the derivative's names, under a prefix) from a checkpoint after
 * checking them against the config. The derivative's `model.embeddings.weight` is an empty [0, hidden] table
 * (vocab_size 0) and is skipped.
 */
import type { TensorSource } from '../../io/safetensors.js';
import { loadCheckedParams } from '../../nn/params.js';
import type { Backend } from '../../runtime/backend.js';
import type { DType } from '../../runtime/dtype.js';
import { MambaMiaCompressor } from './compressor.js';
import type { MambaMiaConfig } from './config.js';

/** The derivative's empty embeddings table of a compressor under `prefix`. */
export const isEmptyEmbeddings = (prefix: string) => (name: string) =>
  name === `${prefix}model.embeddings.weight`;

/** A checkpoint holding one compressor at its root, loaded as `dtype`; a mismatch is a ModelError. */
export async function loadMambaMiaCompressor(
  source: TensorSource,
  c: MambaMiaConfig,
  backend: Backend,
  dtype: DType,
  where: string,
): Promise<MambaMiaCompressor> {
  const params = await loadCheckedParams(source, MambaMiaCompressor.specs('', c), {
    backend,
    dtype,
    where,
    what: 'the MambaMia config',
    skip: isEmptyEmbeddings(''),
  });
  return MambaMiaCompressor.load(params, '', c);
}
