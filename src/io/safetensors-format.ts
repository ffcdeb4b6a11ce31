/**
 * The safetensors container: an 8-byte little-endian header length N, N bytes of JSON
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`), then the tensor
 * bytes, with offsets relative to the end of the header. Everything here is pure: it checks a header
 * against the file size so that a truncated or corrupt file is refused before any tensor is read.
 */
import { InputError, ModelError } from '../errors.js';

/** The element types safetensors defines, with their sizes in bytes. */
export const SAFETENSORS_DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const;

export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPE_BYTES;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Byte range in the file (absolute, header included): [begin, end). */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Absolute file offset where tensor data starts (8 + header length). */
  readonly dataStart: number;
}

/** The reference implementation refuses headers above 100 MB; a real 1,200-tensor index is ~100 kB. */
export const MAX_HEADER_BYTES = 100_000_000;

const isDType = (d: unknown): d is SafetensorsDType =>
  typeof d === 'string' && Object.hasOwn(SAFETENSORS_DTYPE_BYTES, d);

/** Reads the header length from the first 8 bytes, checking it fits the file. */
export function headerLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.length < 8)
    throw new ModelError(
      `${file}: not a safetensors file (${fileSize} bytes, shorter than the 8-byte header length); the file is truncated or empty — download it again`,
    );
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n === 0n || n > BigInt(MAX_HEADER_BYTES))
    throw new ModelError(
      `${file}: not a safetensors file (header length ${n} bytes is ${n === 0n ? 'zero' : `over the ${MAX_HEADER_BYTES}-byte limit`})`,
    );
  if (8n + n > BigInt(fileSize))
    throw new ModelError(
      `${file}: truncated safetensors file (header says ${n} bytes of JSON, but the file has only ${fileSize} bytes); download it again`,
    );
  return Number(n);
}

/** Parses and validates the JSON header of a file of `fileSize` bytes. */
export function parseHeader(json: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw new ModelError(
      `${file}: corrupt safetensors header (not valid UTF-8 JSON: ${(e as Error).message})`,
      {
        cause: e,
      },
    );
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new ModelError(`${file}: corrupt safetensors header (the JSON is not an object)`);

  const dataStart = 8 + json.length;
  const dataBytes = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(raw)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, file);
      continue;
    }
    const bad = (why: string) => new ModelError(`${file}: tensor "${name}": ${why}`);
    if (entry === null || typeof entry !== 'object') throw bad('header entry is not an object');
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isDType(dtype)) throw bad(`unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    )
      throw bad(`data_offsets ${JSON.stringify(offsets)} is not a [begin, end] byte range`);
    const [b, e] = offsets as [number, number];
    if (e > dataBytes)
      throw bad(
        `data ends at byte ${dataStart + e} but the file has ${fileSize} bytes — the file is truncated or the header points outside it; download it again`,
      );
    const expected = shape.reduce((a: number, d: number) => a * d, 1) * SAFETENSORS_DTYPE_BYTES[dtype];
    if (e - b !== expected)
      throw bad(
        `${e - b} bytes of data, but shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes`,
      );
    tensors.set(name, { name, dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
  }
  checkNoOverlap(tensors, file);
  return { tensors, metadata, dataStart };
}

function parseMetadata(entry: unknown, file: string): Record<string, string> {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
    throw new ModelError(`${file}: corrupt safetensors header (__metadata__ is not an object)`);
  for (const [k, v] of Object.entries(entry))
    if (typeof v !== 'string')
      throw new ModelError(`${file}: corrupt safetensors header (__metadata__.${k} is not a string)`);
  return entry as Record<string, string>;
}

function checkNoOverlap(tensors: Map<string, TensorInfo>, file: string): void {
  const sorted = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const [p, t] = [sorted[i - 1], sorted[i]];
    if (t.begin < p.end)
      throw new ModelError(
        `${file}: corrupt safetensors header: tensors "${p.name}" (bytes ${p.begin}–${p.end}) and "${t.name}" (bytes ${t.begin}–${t.end}) overlap`,
      );
  }
}

/**
 * Serialises a header. Entries keep the given order and lie back to back; the JSON is padded with spaces
 * to a multiple of 8 bytes so that the data section starts 8-byte aligned (as the reference writer does).
 */
export function encodeHeader(
  entries: ReadonlyArray<{ name: string; dtype: SafetensorsDType; shape: readonly number[] }>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) obj.__metadata__ = metadata;
  let offset = 0;
  for (const { name, dtype, shape } of entries) {
    if (name === '__metadata__' || Object.hasOwn(obj, name))
      throw new InputError(`cannot write safetensors: duplicate or reserved tensor name "${name}"`);
    const bytes = shape.reduce((a, d) => a * d, 1) * SAFETENSORS_DTYPE_BYTES[dtype];
    obj[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(obj));
  const padded = Math.ceil(json.length / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return header;
}
