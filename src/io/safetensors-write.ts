/**
 * Writing safetensors files (per-video caches, converted checkpoints). The header is computed from shapes
 * and dtypes alone, then tensors are streamed to disk one at a time — a runtime tensor is downloaded only
 * when its turn comes — into a temporary file renamed into place at the end, so a crash never leaves a
 * half-written file under the final name.
 */
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { isTensor } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import { type HostTensor, SAFETENSORS_DTYPE_OF } from './convert.js';
import { encodeHeader, SAFETENSORS_DTYPE_BYTES, type SafetensorsDType } from './safetensors-format.js';

/** A tensor produced only when its turn to be written comes (so a large file never sits in memory whole). */
export interface LazyEntry {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  load(): Promise<HostTensor>;
}

export type SaveEntry = HostTensor | Tensor | LazyEntry;

const isLazy = (t: SaveEntry): t is LazyEntry => !isTensor(t) && typeof (t as LazyEntry).load === 'function';
export type SaveTensors = Record<string, SaveEntry> | Iterable<readonly [string, SaveEntry]>;

export interface SaveOptions {
  /** The `__metadata__` string map. */
  metadata?: Record<string, string>;
}

const WRITE_CHUNK = 1 << 30;

export async function saveSafetensors(
  path: string,
  tensors: SaveTensors,
  opts: SaveOptions = {},
): Promise<void> {
  const given = Symbol.iterator in tensors ? [...tensors] : Object.entries(tensors);
  // Wider elements first (stable otherwise), so every tensor starts aligned to its element size.
  const width = ([, t]: readonly [string, SaveEntry]) =>
    SAFETENSORS_DTYPE_BYTES[isTensor(t) ? SAFETENSORS_DTYPE_OF[t.dtype] : t.dtype];
  const entries = given.sort((a, b) => width(b) - width(a));
  const specs = entries.map(([name, t]) => {
    const dtype = isTensor(t) ? SAFETENSORS_DTYPE_OF[t.dtype] : t.dtype;
    if (!isTensor(t) && !isLazy(t)) {
      const expected = t.shape.reduce((a, d) => a * d, 1) * SAFETENSORS_DTYPE_BYTES[dtype];
      if (t.data.byteLength !== expected)
        throw new InputError(
          `cannot save tensor "${name}": ${t.data.byteLength} bytes of data for shape [${t.shape.join(', ')}] of ${dtype} (needs ${expected})`,
        );
    }
    return { name, dtype, shape: t.shape };
  });
  for (const [k, v] of Object.entries(opts.metadata ?? {}))
    if (typeof v !== 'string')
      throw new InputError(`cannot save safetensors: metadata "${k}" is not a string`);
  const header = encodeHeader(specs, opts.metadata);

  const tmp = `${path}.${process.pid}.partial`;
  const handle = await open(tmp, 'w');
  try {
    await writeAll(handle, header);
    for (const [name, t] of entries) {
      const data = isTensor(t) ? await t.raw() : isLazy(t) ? await loadLazy(name, t) : t.data;
      await writeAll(handle, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    await handle.close();
    await rename(tmp, path);
  } catch (e) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
}

async function loadLazy(name: string, t: LazyEntry) {
  const host = await t.load();
  const expected = t.shape.reduce((a, d) => a * d, 1) * SAFETENSORS_DTYPE_BYTES[t.dtype];
  if (host.dtype !== t.dtype || host.data.byteLength !== expected)
    throw new InputError(
      `cannot save tensor "${name}": it produced ${host.dtype} with ${host.data.byteLength} bytes, but ${t.dtype} [${t.shape.join(', ')}] (${expected} bytes) was announced`,
    );
  return host.data;
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, Math.min(WRITE_CHUNK, bytes.length - done));
    done += bytesWritten;
  }
}
