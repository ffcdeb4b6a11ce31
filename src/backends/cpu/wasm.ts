import { readFileSync } from 'node:fs';
import type { SsdDesc } from '../../runtime/backend.js';
import { packageFile } from '../cuda/addon.js';
import type { ConvGradArgs } from './grad-ssm.js';
import type { FastGemm, FastOps, FastSoftmaxRows } from './kernels.js';

type Fn = (...args: number[]) => number;

/** An SsdDesc as the scan kernels' seven integer arguments. */
export const ssdDims = (d: SsdDesc): number[] => [
  d.batch,
  d.len,
  d.heads,
  d.headDim,
  d.groups,
  d.dState,
  d.chunkSize,
];

/**
 * The WebAssembly kernels (native/cpu/gemm-relaxed.wasm or gemm.wasm, built from the same C as the native addon with
 * 128-bit SIMD).
 * Each thread has its own instance and memory: a call copies the parts of A, B (f32 or raw bf16/f16), the
 * bias and, when accumulating, C that it reads into that memory, runs, and copies C's rows back. The copies
 * are O(mk + kn + mn) against O(mnk) work.
 */
interface Instance {
  memory: WebAssembly.Memory;
  gemm: (...args: number[]) => void;
  softmaxRows: (...args: number[]) => void;
  /** ops.inc's kernels, by export name (unary, binary, rms_norm, layer_norm, conv1d, ssd_scratch_floats, ssd,
   * ssd_grad_scratch_floats, ssd_grad). */
  fn: Record<string, Fn>;
  /** Byte offset of the packing buffers (after them, the operands). */
  pack: number;
  heap: number;
}

let instance: Instance | null = null;

/**
 * The modules, best first: relaxed SIMD (f32x4.relaxed_madd, fused on CPUs with FMA; V8 ships it from 11.4, so
 * Node 22 runs it and Node 20 only with --experimental-wasm-relaxed-simd), then plain 128-bit SIMD.
 */
const MODULES = ['native/cpu/gemm-relaxed.wasm', 'native/cpu/gemm.wasm'] as const;

let loaded: (typeof MODULES)[number] | null = null;

/** Which module this thread runs (null before wasmAvailable() loaded one). */
export const wasmModule = (): string | null => loaded;

/** Compiles and instantiates the first module this runtime validates, on this thread (synchronously: ~40 KB). */
export function wasmAvailable(): boolean {
  if (instance) return true;
  for (const file of MODULES) {
    const path = packageFile(file);
    if (!path) continue;
    const bytes = new Uint8Array(readFileSync(path));
    if (!WebAssembly.validate(bytes)) continue;
    try {
      instance = instantiate(bytes);
      loaded = file;
      return true;
    } catch {}
  }
  return false;
}

function instantiate(bytes: Uint8Array<ArrayBuffer>): Instance {
  const e = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as Record<string, unknown>;
  const base = (e.__heap_base as WebAssembly.Global).value as number;
  const pack = align(base);
  const packBytes = 4 * (e.pack_floats as () => number)();
  return {
    memory: e.memory as WebAssembly.Memory,
    gemm: e.gemm as Instance['gemm'],
    softmaxRows: e.softmax_rows as Instance['softmaxRows'],
    fn: e as Record<string, Fn>,
    pack,
    heap: align(pack + packBytes),
  };
}

const align = (n: number) => Math.ceil(n / 64) * 64;

/** Elements from the first to the last one a strided rows×cols view reads (0 when it reads none). */
const extent = (rows: number, cols: number, rowStride: number, colStride: number) =>
  rows > 0 && cols > 0 ? (rows - 1) * rowStride + (cols - 1) * colStride + 1 : 0;

/** Grows the memory to hold `end` bytes; returns its buffer. */
function reserve(w: Instance, end: number): ArrayBuffer {
  const have = w.memory.buffer.byteLength;
  if (end > have) w.memory.grow(Math.ceil((end - have) / 65536));
  return w.memory.buffer;
}

export const wasmSoftmaxRows: FastSoftmaxRows = (s, rows, ld, width, lo, hi) => {
  const w = instance!;
  const len = extent(rows, width, ld, 1);
  const sAt = w.heap;
  const loAt = align(sAt + 4 * len);
  const hiAt = loAt + 4 * rows;
  const buf = reserve(w, hiAt + 4 * rows);
  const view = new Float32Array(buf, sAt, len);
  view.set(s.subarray(0, len));
  new Int32Array(buf, loAt, rows).set(lo.subarray(0, rows));
  new Int32Array(buf, hiAt, rows).set(hi.subarray(0, rows));
  w.softmaxRows(sAt, rows, ld, width, loAt, hiAt);
  s.set(view);
};

export const wasmGemm: FastGemm = (g, b, bType) => {
  const w = instance!;
  const { m, n, k } = g;
  const aLen = extent(m, k, g.aRow, g.aCol);
  const bLen = extent(k, n, g.bRow, g.bCol);
  const cLen = extent(m, n, g.ldc, 1);
  const bBytes = bType === 0 ? 4 : 2;
  const aAt = w.heap;
  const bAt = align(aAt + 4 * aLen);
  const cAt = align(bAt + bBytes * bLen);
  const biasAt = align(cAt + 4 * cLen);
  const buf = reserve(w, biasAt + (g.bias ? 4 * n : 0));
  new Float32Array(buf, aAt, aLen).set(g.a.subarray(g.aOff, g.aOff + aLen));
  if (bType === 0) new Float32Array(buf, bAt, bLen).set((b as Float32Array).subarray(g.bOff, g.bOff + bLen));
  else new Uint16Array(buf, bAt, bLen).set((b as Uint16Array).subarray(g.bOff, g.bOff + bLen));
  if (g.bias) new Float32Array(buf, biasAt, n).set(g.bias.subarray(g.biasOff, g.biasOff + n));
  const c = new Float32Array(buf, cAt, cLen);
  const contiguous = g.ldc === n;
  if (g.accumulate) {
    if (contiguous) c.set(g.c.subarray(g.cOff, g.cOff + cLen));
    else
      for (let i = 0; i < m; i++) c.set(g.c.subarray(g.cOff + i * g.ldc, g.cOff + i * g.ldc + n), i * g.ldc);
  }
  w.gemm(
    aAt,
    g.aRow,
    g.aCol,
    bAt,
    g.bRow,
    g.bCol,
    bType,
    cAt,
    g.ldc,
    m,
    n,
    k,
    g.alpha,
    g.bias ? biasAt : 0,
    g.accumulate ? 1 : 0,
    w.pack,
  );
  if (contiguous) g.c.set(c, g.cOff);
  else for (let i = 0; i < m; i++) g.c.set(c.subarray(i * g.ldc, i * g.ldc + n), g.cOff + i * g.ldc);
};

type Staged = Float32Array | Int32Array | null;

/**
 * Copies `inputs` into the heap (64-byte aligned; null → address 0), reserves room for `outputs` (f32 arrays the
 * call writes) and `extra` bytes, runs `call` with their addresses, and copies the outputs back unless `copyOut`
 * does it.
 */
function staged(
  inputs: Staged[],
  outputs: (Float32Array | null)[],
  extra: number,
  call: (inAt: number[], outAt: number[], extraAt: number) => number,
  copyOut?: (out: Float32Array, i: number, from: Float32Array) => void,
): number {
  const w = instance!;
  let end = w.heap;
  const place = (a: Staged) => {
    if (!a) return 0;
    const at = end;
    end = align(end + a.byteLength);
    return at;
  };
  const inAt = inputs.map(place);
  const outAt = outputs.map(place);
  const extraAt = end;
  const buf = reserve(w, end + extra);
  inputs.forEach((a, i) => {
    if (a instanceof Float32Array) new Float32Array(buf, inAt[i], a.length).set(a);
    else if (a) new Int32Array(buf, inAt[i], a.length).set(a);
  });
  const r = call(inAt, outAt, extraAt);
  outputs.forEach((a, i) => {
    if (!a) return;
    const from = new Float32Array(w.memory.buffer, outAt[i], a.length);
    if (copyOut) copyOut(a, i, from);
    else a.set(from);
  });
  return r;
}

export const wasmOps: FastOps = {
  unary: (code, src, dst) =>
    staged([src], [dst], 0, ([s], [d]) => instance!.fn.unary(code, s, d, src.length)) === 1,
  binary: (code, a, b, dst, dims, rank) =>
    void staged([a, b, dims], [dst], 0, ([pa, pb, pd], [o]) =>
      instance!.fn.binary(code, pa, pb, o, rank, pd),
    ),
  rmsNorm: (out, x, w, gate, rows, dim, group, eps, normBeforeGate) =>
    void staged([x, w, gate], [out], 0, ([px, pw, pg], [o]) =>
      instance!.fn.rms_norm(o, px, pw, pg, rows, dim, group, eps, normBeforeGate ? 1 : 0),
    ),
  layerNorm: (out, x, w, b, rows, dim, eps) =>
    void staged([x, w, b], [out], 0, ([px, pw, pb], [o]) =>
      instance!.fn.layer_norm(o, px, pw, pb, rows, dim, eps),
    ),
  conv1d: (y, x, w, bias, state, batch, len, channels, width, silu) =>
    void staged([x, w, bias, state], [y], 0, ([px, pw, pb, ps], [o]) =>
      instance!.fn.conv1d(o, px, pw, pb, ps, batch, len, channels, width, silu ? 1 : 0),
    ),
  ssd: (a, lo, hi) => {
    const { batch, len, heads: H, headDim: P, dState: N } = a.desc;
    const f = instance!.fn;
    const scratch = 4 * f.ssd_scratch_floats(...ssdDims(a.desc));
    // Only the heads [lo, hi) are this call's: copy back their rows of y and their states, nothing else
    // (other threads write the rest of the same arrays).
    const copyOut = (out: Float32Array, i: number, from: Float32Array) => {
      for (let b = 0; b < batch; b++) {
        const h0 = Math.max(lo - b * H, 0);
        const h1 = Math.min(hi - b * H, H);
        if (h0 >= h1) continue;
        if (i === 1) copyRange(out, from, (b * H + h0) * P * N, (h1 - h0) * P * N);
        else for (let t = 0; t < len; t++) copyRange(out, from, ((b * len + t) * H + h0) * P, (h1 - h0) * P);
      }
    };
    staged(
      [a.x, a.dt, a.A, a.B, a.C, a.D, a.s0],
      [a.y, a.sOut],
      scratch,
      ([x, dt, A, B, C, D, s0], [y, sOut], at) =>
        f.ssd(x, dt, A, B, C, D, s0, y, sOut, ...ssdDims(a.desc), lo, hi, at, instance!.pack),
      copyOut,
    );
  },
  ssdGrad: (a, lo, hi) => {
    const { batch, len, heads: H, headDim: P, groups: G, dState: N } = a.desc;
    const f = instance!.fn;
    const scratch = 4 * f.ssd_grad_scratch_floats(...ssdDims(a.desc));
    // Only the (batch, group) pairs [lo, hi) are this call's: copy back their rows and heads alone.
    const copyOut = (out: Float32Array, i: number, from: Float32Array) => {
      for (let b = 0; b < batch; b++) {
        const g0 = Math.max(lo - b * G, 0);
        const g1 = Math.min(hi - b * G, G);
        if (g0 >= g1) continue;
        const [h0, h1] = [(g0 * H) / G, (g1 * H) / G];
        if (i >= 4) {
          // dA, dD per (batch, head); dState per (batch, head) state
          const per = i === 6 ? P * N : 1;
          copyRange(out, from, (b * H + h0) * per, (h1 - h0) * per);
          continue;
        }
        for (let t = 0; t < len; t++) {
          const bt = b * len + t;
          if (i === 0) copyRange(out, from, (bt * H + h0) * P, (h1 - h0) * P);
          else if (i === 1) copyRange(out, from, bt * H + h0, h1 - h0);
          else copyRange(out, from, (bt * G + g0) * N, (g1 - g0) * N);
        }
      }
    };
    staged(
      [a.x, a.dt, a.A, a.B, a.C, a.D, a.s0, a.dy, a.dStateOut],
      [a.dx, a.ddt, a.dB, a.dC, a.dA, a.dD, a.dState],
      scratch,
      (ins, outs, at) => f.ssd_grad(...ins, ...outs, ...ssdDims(a.desc), lo, hi, at, instance!.pack),
      copyOut,
    );
  },
  conv1dGrad: (a, lo, hi) => {
    const { len, channels: C, width: W } = a.desc;
    // Only the batch rows [lo, hi) are this call's.
    const per = [len * C, (W - 1) * C, C * W, C];
    staged(
      [a.x, a.w, a.bias, a.state, a.dy, a.dStateOut],
      [a.dx, a.dState, a.dw, a.db],
      0,
      (ins, outs) => {
        const sizes = convGradArgs(a).slice(10) as number[];
        instance!.fn.conv1d_grad(...ins, ...outs, ...sizes, lo, hi);
        return 0;
      },
      (out, i, from) => copyRange(out, from, lo * per[i], (hi - lo) * per[i]),
    );
  },
};

/** A conv1d backward's arrays and sizes in the kernels' argument order (before lo, hi). */
export const convGradArgs = (a: ConvGradArgs): (Float32Array | number | null)[] => {
  const d = a.desc;
  return [
    a.x,
    a.w,
    a.bias,
    a.state,
    a.dy,
    a.dStateOut,
    a.dx,
    a.dState,
    a.dw,
    a.db,
    d.batch,
    d.len,
    d.channels,
    d.width,
    d.silu ? 1 : 0,
  ];
};

/** out[at, at + n) = from[at, at + n). */
const copyRange = (out: Float32Array, from: Float32Array, at: number, n: number) =>
  out.set(from.subarray(at, at + n), at);
