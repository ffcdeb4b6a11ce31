import { createRequire } from 'node:module';
import { UsageError } from '../../errors.js';
import { packageFile } from '../cuda/addon.js';
import type { Gemm } from './gemm.js';
import type { ConvGradArgs, SsdGradArgs } from './grad-ssm.js';
import type { SsdArgs } from './ssm.js';
import { convGradArgs, ssdDims, wasmAvailable, wasmGemm, wasmOps, wasmSoftmaxRows } from './wasm.js';

/**
 * Which kernels (GEMM, attention softmax) the CPU backend runs: the TypeScript reference ('ts'), the WebAssembly SIMD build of
 * native/cpu ('wasm', always shipped), or the native addon built at install where a C compiler exists, by
 * instruction set ('base' = 16-byte vectors, 'avx2', 'avx512' picked by CPUID; 'neon' on arm64). LONGSHOT_CPU_KERNELS chooses
 * (ts | wasm | native | base | avx2 | avx512 | neon); by default the best native kernel, else wasm.
 */
export type CpuKernels = 'ts' | 'wasm' | 'base' | 'avx2' | 'avx512' | 'neon';

/** The fast GEMM entry: B as f32 or raw bf16/f16 (bType 0, 1, 2), every other operand f32. */
export type FastGemm = (
  g: Gemm & { a: Float32Array; c: Float32Array },
  b: Float32Array | Uint16Array,
  bType: number,
) => void;

/**
 * Softmax of rows [0, rows) of s (stride ld) over columns [lo[r], hi[r]) of each, the rest of the first
 * `width` columns set to 0; a row with no finite maximum becomes all 0.
 */
export type FastSoftmaxRows = (
  s: Float32Array,
  rows: number,
  ld: number,
  width: number,
  lo: Int32Array,
  hi: Int32Array,
) => void;

/**
 * The other fast kernels (native/cpu/ops.inc), on f32 views (null: an absent operand); the semantics of the
 * TypeScript kernels they replace (elementwise.ts, norm.ts, ssm.ts).
 */
export interface FastOps {
  /** dst = op(src) for a UNARY_CODE; false (nothing done) for an op the kernels lack (log). */
  unary(code: number, src: Float32Array, dst: Float32Array): boolean;
  /** dst = op(a, b) for a BINARY_CODE; dims = [shape, aStrides, bStrides] of `rank` ≤ 8 axes each. */
  binary(
    code: number,
    a: Float32Array,
    b: Float32Array,
    dst: Float32Array,
    dims: Int32Array,
    rank: number,
  ): void;
  rmsNorm(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array | null,
    gate: Float32Array | null,
    rows: number,
    dim: number,
    group: number,
    eps: number,
    normBeforeGate: boolean,
  ): void;
  layerNorm(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array | null,
    b: Float32Array | null,
    rows: number,
    dim: number,
    eps: number,
  ): void;
  /** y only (the caller keeps the state); width ≤ 16. */
  conv1d(
    y: Float32Array,
    x: Float32Array,
    w: Float32Array,
    bias: Float32Array | null,
    state: Float32Array | null,
    batch: number,
    len: number,
    channels: number,
    width: number,
    silu: boolean,
  ): void;
  /** ssdTask's (batch, head) pairs [lo, hi). */
  ssd(a: SsdArgs, lo: number, hi: number): void;
  /** ssdBackwardTask's (batch, group) pairs [lo, hi). */
  ssdGrad(a: SsdGradArgs, lo: number, hi: number): void;
  /** conv1dBackwardTask's batch rows [lo, hi); width ≤ 16. */
  conv1dGrad(a: ConvGradArgs, lo: number, hi: number): void;
}

type Arg = number | boolean | Float32Array | Uint16Array | Int32Array | null;

interface CpuAddon {
  gemm(isa: number, ...args: (number | Float32Array | Uint16Array | null)[]): void;
  softmaxRows(isa: number, s: Float32Array, sOff: number, ...args: (number | Int32Array)[]): void;
  unary(isa: number, code: number, src: Float32Array, dst: Float32Array, n: number): boolean;
  binary(isa: number, ...args: Arg[]): void;
  rmsNorm(isa: number, ...args: Arg[]): void;
  layerNorm(isa: number, ...args: Arg[]): void;
  conv1d(isa: number, ...args: Arg[]): void;
  ssd(isa: number, ...args: Arg[]): void;
  ssdGrad(isa: number, ...args: Arg[]): void;
  conv1dGrad(isa: number, ...args: Arg[]): void;
  isas(): string[];
}

const ISAS = ['base', 'avx2', 'avx512', 'neon'] as const;
const CHOICES = ['ts', 'wasm', 'native', ...ISAS];

let addon: CpuAddon | null | undefined;

/** The native addon, loaded once per thread; null when it was not built or does not load here. */
function nativeAddon(): CpuAddon | null {
  if (addon !== undefined) return addon;
  const path = packageFile('native/cpu/build/longshot_cpu.node');
  try {
    addon = path ? (createRequire(import.meta.url)(path) as CpuAddon) : null;
  } catch {
    addon = null;
  }
  return addon;
}

/** The native instruction sets this CPU runs, best last ([] without the addon). */
export const nativeIsas = (): string[] => nativeAddon()?.isas() ?? [];

/** Resolves a LONGSHOT_CPU_KERNELS value on this machine (throws a UsageError naming what is missing). */
function resolve(choice: string | undefined): CpuKernels {
  const isas = nativeIsas();
  if (!choice) return (isas.at(-1) as CpuKernels | undefined) ?? (wasmAvailable() ? 'wasm' : 'ts');
  if (!CHOICES.includes(choice))
    throw new UsageError(
      `LONGSHOT_CPU_KERNELS=${choice} is not a kernel set; use one of ${CHOICES.join(', ')}.`,
    );
  if (choice === 'ts') return 'ts';
  if (choice === 'wasm') {
    if (!wasmAvailable())
      throw new UsageError(
        'LONGSHOT_CPU_KERNELS=wasm: this runtime cannot load native/cpu/gemm.wasm (no WebAssembly SIMD).',
      );
    return 'wasm';
  }
  const want = choice === 'native' ? isas.at(-1) : choice;
  if (!want || !isas.includes(want))
    throw new UsageError(
      isas.length
        ? `LONGSHOT_CPU_KERNELS=${choice}: this CPU runs only ${isas.join(', ')}.`
        : `LONGSHOT_CPU_KERNELS=${choice}: the native CPU addon is not built; run "npm run build:cpu" (needs a C compiler).`,
    );
  return want as CpuKernels;
}

let current: CpuKernels | null = null;

/** The kernels in use on this thread (resolved from LONGSHOT_CPU_KERNELS on first use). */
export function cpuKernels(): CpuKernels {
  current ??= resolve(process.env.LONGSHOT_CPU_KERNELS);
  return current;
}

/**
 * Switches the kernels (tests and benchmarks compare them; the pool passes the caller's choice to its
 * workers with every task). Takes a LONGSHOT_CPU_KERNELS value; returns the kernels used before.
 */
export function useCpuKernels(choice: string): CpuKernels {
  const before = cpuKernels();
  current = resolve(choice);
  return before;
}

const nativeGemm =
  (isa: number): FastGemm =>
  (g, b, bType) =>
    addon!.gemm(
      isa,
      g.a,
      g.aOff,
      g.aRow,
      g.aCol,
      b,
      g.bOff,
      g.bRow,
      g.bCol,
      bType,
      g.c,
      g.cOff,
      g.ldc,
      g.m,
      g.n,
      g.k,
      g.alpha,
      g.bias,
      g.biasOff,
      g.accumulate ? 1 : 0,
    );

const nativeSoftmaxRows =
  (isa: number): FastSoftmaxRows =>
  (s, rows, ld, width, lo, hi) =>
    addon!.softmaxRows(isa, s, 0, rows, ld, width, lo, hi);

const nativeOps = (isa: number): FastOps => ({
  unary: (code, src, dst) => addon!.unary(isa, code, src, dst, src.length),
  binary: (code, a, b, dst, dims, rank) => addon!.binary(isa, code, a, b, dst, dims, rank),
  rmsNorm: (...args) => addon!.rmsNorm(isa, ...args.slice(0, 8), args[8] ? 1 : 0),
  layerNorm: (...args) => addon!.layerNorm(isa, ...args),
  conv1d: (...args) => addon!.conv1d(isa, ...args.slice(0, 9), args[9] ? 1 : 0),
  ssd: (a, lo, hi) => {
    const d = a.desc;
    addon!.ssd(isa, a.x, a.dt, a.A, a.B, a.C, a.D, a.s0, a.y, a.sOut, ...ssdDims(d), lo, hi);
  },
  ssdGrad: (a, lo, hi) => {
    const d = a.desc;
    addon!.ssdGrad(
      isa,
      ...[a.x, a.dt, a.A, a.B, a.C, a.D, a.s0, a.dy, a.dStateOut],
      ...[a.dx, a.ddt, a.dB, a.dC, a.dA, a.dD, a.dState],
      ...ssdDims(d),
      lo,
      hi,
    );
  },
  conv1dGrad: (a, lo, hi) => addon!.conv1dGrad(isa, ...convGradArgs(a), lo, hi),
});

interface KernelSet {
  gemm: FastGemm;
  softmaxRows: FastSoftmaxRows;
  ops: FastOps;
}

const native = (isa: number): KernelSet => ({
  gemm: nativeGemm(isa),
  softmaxRows: nativeSoftmaxRows(isa),
  ops: nativeOps(isa),
});

const FAST: Record<Exclude<CpuKernels, 'ts'>, KernelSet> = {
  wasm: { gemm: wasmGemm, softmaxRows: wasmSoftmaxRows, ops: wasmOps },
  base: native(0),
  avx2: native(1),
  avx512: native(2),
  neon: native(3),
};

/** The fast element-wise, norm, conv1d and SSD kernels when fast kernels are in use, else null (the reference). */
export function fastOps(): FastOps | null {
  const k = cpuKernels();
  return k === 'ts' ? null : FAST[k].ops;
}

/**
 * Runs g on the fast kernels when they are in use and its A and C are f32 (the TypeScript kernels keep f64
 * scratch operands); returns false to leave it to the reference.
 */
export function fastGemm(g: Gemm): boolean {
  const k = cpuKernels();
  if (k === 'ts' || !(g.a instanceof Float32Array) || !(g.c instanceof Float32Array)) return false;
  const f32 = g as Gemm & { a: Float32Array; c: Float32Array };
  if (g.b instanceof Uint16Array) FAST[k].gemm(f32, g.b, g.bHalf === 'f16' ? 2 : 1);
  else if (g.b instanceof Float32Array) FAST[k].gemm(f32, g.b, 0);
  else return false;
  return true;
}

/** Runs the fast softmax (see FastSoftmaxRows) when fast kernels are in use; false leaves it to the caller. */
export function fastSoftmaxRows(...args: Parameters<FastSoftmaxRows>): boolean {
  const k = cpuKernels();
  if (k === 'ts') return false;
  FAST[k].softmaxRows(...args);
  return true;
}
