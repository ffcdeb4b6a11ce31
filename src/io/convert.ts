/**
 * Host-side conversion between safetensors element types and the runtime's dtypes. Checkpoints store
 * bf16/f16/f32 floats, i64 ids and bool/u8 masks; the runtime holds f32/bf16/f16/i32/u8.
 */
import { ModelError } from '../errors.js';
import { type DType, fromF32, isFloat, type RawArray, toF32 } from '../runtime/dtype.js';
import { SAFETENSORS_DTYPE_BYTES, type SafetensorsDType } from './safetensors-format.js';

/** Host elements of one safetensors dtype (16-bit floats as bit patterns, I64 as BigInt64Array). */
export type HostArray =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** A tensor held on the host in a safetensors dtype. */
export interface HostTensor {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly data: HostArray;
}

/** A typed view of `bytes` (which must start 8-byte aligned) as elements of `dtype`. */
export function hostView(dtype: SafetensorsDType, bytes: Uint8Array): HostArray {
  const { buffer, byteOffset: o } = bytes;
  const n = bytes.byteLength / SAFETENSORS_DTYPE_BYTES[dtype];
  switch (dtype) {
    case 'F64':
      return new Float64Array(buffer, o, n);
    case 'F32':
      return new Float32Array(buffer, o, n);
    case 'F16':
    case 'BF16':
    case 'U16':
      return new Uint16Array(buffer, o, n);
    case 'I64':
      return new BigInt64Array(buffer, o, n);
    case 'U64':
      return new BigUint64Array(buffer, o, n);
    case 'I32':
      return new Int32Array(buffer, o, n);
    case 'U32':
      return new Uint32Array(buffer, o, n);
    case 'I16':
      return new Int16Array(buffer, o, n);
    case 'I8':
      return new Int8Array(buffer, o, n);
    case 'U8':
    case 'BOOL':
    case 'F8_E4M3':
    case 'F8_E5M2':
      return new Uint8Array(buffer, o, n);
  }
}

/** The runtime dtype a stored tensor loads as when none is requested. */
export function defaultRuntimeDType(dtype: SafetensorsDType): DType {
  switch (dtype) {
    case 'F32':
    case 'F64':
      return 'f32';
    case 'F16':
      return 'f16';
    case 'BF16':
      return 'bf16';
    case 'U8':
    case 'BOOL':
      return 'u8';
    default:
      return 'i32';
  }
}

/** The safetensors dtype that stores a runtime dtype exactly. */
export const SAFETENSORS_DTYPE_OF: Record<DType, SafetensorsDType> = {
  f32: 'F32',
  bf16: 'BF16',
  f16: 'F16',
  i32: 'I32',
  u8: 'U8',
};

const FLOAT_SOURCES: ReadonlySet<SafetensorsDType> = new Set(['F64', 'F32', 'F16', 'BF16']);
const INT_RANGE: Record<'i32' | 'u8', [number, number]> = { i32: [-(2 ** 31), 2 ** 31 - 1], u8: [0, 255] };

/**
 * Converts a stored tensor to raw elements of `target`. Floats convert among f32/bf16/f16 (rounding to
 * nearest even); integers and bools convert to i32/u8 (refusing values out of range) or to a float dtype.
 * `where` names the file and tensor in errors.
 */
export function toRuntime(src: HostTensor, target: DType, where: string): RawArray {
  const { dtype, data } = src;
  if (FLOAT_SOURCES.has(dtype)) {
    if (!isFloat(target))
      throw new ModelError(
        `${where}: cannot load ${dtype} tensor as ${target} (floats load as f32/bf16/f16)`,
      );
    if (dtype === 'F32' && target === 'f32') return data as Float32Array;
    if ((dtype === 'BF16' && target === 'bf16') || (dtype === 'F16' && target === 'f16'))
      return data as Uint16Array;
    const f32 =
      dtype === 'F64'
        ? Float32Array.from(data as Float64Array)
        : dtype === 'F32'
          ? (data as Float32Array)
          : toF32(dtype === 'BF16' ? 'bf16' : 'f16', data as Uint16Array);
    return target === 'f32' ? f32 : fromF32(target, f32);
  }
  if (dtype === 'F8_E4M3' || dtype === 'F8_E5M2')
    throw new ModelError(`${where}: ${dtype} tensors are not supported; convert the checkpoint to bf16`);
  if (dtype === 'I64') return fromI64(data as BigInt64Array, target, where);
  if (dtype === 'U64')
    return fromI64(new BigInt64Array(data.buffer, data.byteOffset, data.length), target, where, true);
  const values = data as Exclude<HostArray, BigInt64Array | BigUint64Array>;
  if (isFloat(target)) return fromF32(target, values);
  if ((dtype === 'I32' && target === 'i32') || ((dtype === 'U8' || dtype === 'BOOL') && target === 'u8'))
    return values as Int32Array | Uint8Array;
  const [lo, hi] = INT_RANGE[target as 'i32' | 'u8'];
  for (let i = 0; i < values.length; i++)
    if (values[i] < lo || values[i] > hi)
      throw new ModelError(`${where}: value ${values[i]} at index ${i} does not fit ${target}`);
  return target === 'i32' ? Int32Array.from(values) : Uint8Array.from(values);
}

/** i64 → i32/u8/float without BigInt per element: the high word must be the sign extension of the low one. */
function fromI64(data: BigInt64Array, target: DType, where: string, unsigned = false): RawArray {
  const words = new Int32Array(data.buffer, data.byteOffset, data.length * 2);
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const lo = words[2 * i];
    const hi = words[2 * i + 1];
    if (hi !== lo >> 31 || (unsigned && lo < 0))
      throw new ModelError(
        `${where}: value ${unsigned ? BigInt.asUintN(64, data[i]) : data[i]} at index ${i} overflows i32 (an I64 tensor loads as i32)`,
      );
    out[i] = lo;
  }
  if (target === 'i32') return out;
  if (isFloat(target)) return fromF32(target, out);
  for (let i = 0; i < out.length; i++)
    if (out[i] < 0 || out[i] > 255)
      throw new ModelError(`${where}: value ${out[i]} at index ${i} does not fit u8`);
  return Uint8Array.from(out);
}
