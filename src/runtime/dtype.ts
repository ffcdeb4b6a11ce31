/** Element types. bf16/f16 are storage types: the CPU backend computes in f32. */
export type DType = 'f32' | 'bf16' | 'f16' | 'i32' | 'u8';

export const DTYPES: readonly DType[] = ['f32', 'bf16', 'f16', 'i32', 'u8'];

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i32: 4, u8: 1 };

export const isFloat = (d: DType): boolean => d === 'f32' || d === 'bf16' || d === 'f16';

/** The typed array that holds one dtype's raw elements on the host (bf16/f16 as their 16-bit patterns). */
export type RawArray = Float32Array | Uint16Array | Int32Array | Uint8Array;

export function rawArrayFor(
  dtype: DType,
  buffer: ArrayBufferLike,
  byteOffset: number,
  length: number,
): RawArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, byteOffset, length);
    case 'bf16':
    case 'f16':
      return new Uint16Array(buffer, byteOffset, length);
    case 'i32':
      return new Int32Array(buffer, byteOffset, length);
    case 'u8':
      return new Uint8Array(buffer, byteOffset, length);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 → bf16 bits with round-to-nearest-even (NaN stays NaN), as torch does. */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** f32 → IEEE half bits, round-to-nearest-even, with subnormals, ±inf on overflow. */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Converts raw elements of `dtype` to f32 values (copy). */
export function toF32(dtype: DType, raw: RawArray): Float32Array {
  if (dtype === 'f32') return new Float32Array(raw as Float32Array);
  const out = new Float32Array(raw.length);
  if (dtype === 'bf16') {
    const src = raw as Uint16Array;
    const o = new Uint32Array(out.buffer);
    for (let i = 0; i < src.length; i++) o[i] = src[i] << 16;
  } else if (dtype === 'f16') {
    for (let i = 0; i < raw.length; i++) out[i] = f16ToF32(raw[i]);
  } else {
    for (let i = 0; i < raw.length; i++) out[i] = raw[i];
  }
  return out;
}

/** Converts f32 values to raw elements of `dtype` (rounding as torch does; integers truncate toward zero). */
export function fromF32(dtype: DType, values: ArrayLike<number>): RawArray {
  const n = values.length;
  switch (dtype) {
    case 'f32':
      return Float32Array.from(values);
    case 'bf16': {
      const o = new Uint16Array(n);
      for (let i = 0; i < n; i++) o[i] = f32ToBf16(values[i]);
      return o;
    }
    case 'f16': {
      const o = new Uint16Array(n);
      for (let i = 0; i < n; i++) o[i] = f32ToF16(values[i]);
      return o;
    }
    case 'i32':
      return Int32Array.from(values, (v) => Math.trunc(v));
    case 'u8':
      return Uint8Array.from(values, (v) => Math.trunc(v));
  }
}
