// CPU backend throughput, per kernel set (the TypeScript reference, WebAssembly, the best native one): GEMM
// GFLOP/s beside numpy's BLAS (else a plain C loop built with -O3 -march=native, as a floor), SSD scan and
// attention tokens/s, the causal conv1d, gated RMSNorm, LayerNorm and element-wise ops in M elements/s, on 1 thread
// and on all threads (those last ones run on the calling thread only).
// Run: npm run bench:cpu  (LONGSHOT_CPU_THREADS caps the pool; BENCH_SECONDS sets the time per case).
// Prints a table and writes bench/results/cpu_ops.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { cpuKernels, nativeIsas, useCpuKernels } from '../src/backends/cpu/kernels.js';
import { cpuThreads, warmUp } from '../src/backends/cpu/pool.js';
import { wasmModule } from '../src/backends/cpu/wasm.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';

const cpu = cpuBackend();
const seconds = Number(process.env.BENCH_SECONDS ?? 1.5);
const rand = (n: number, lo = -1, hi = 1) =>
  Float32Array.from({ length: n }, () => lo + (hi - lo) * Math.random());

/**
 * Mean wall and process-CPU seconds per call of fn (disposing what it returns), after one warm-up call. On a
 * busy machine the wall time includes waiting for a core; with one thread the CPU time does not, so its rate
 * estimates an idle core.
 */
function time(fn: () => Tensor | Tensor[]): { wall: number; cpu: number } {
  const run = () => {
    const r = fn();
    for (const t of Array.isArray(r) ? r : [r]) t.dispose();
  };
  run();
  let n = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  do {
    run();
    n++;
  } while (performance.now() - t0 < seconds * 1000);
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / 1000 / n, cpu: (c.user + c.system) / 1e6 / n };
}

interface Row {
  case: string;
  /** The kernel set (ts, wasm, base, avx2, avx512) or the peer (numpy's BLAS, a C loop). */
  kernels: string;
  threads: number;
  /** Wall seconds per call. */
  seconds: number;
  /** Work per wall second. */
  value: number;
  /** Work per CPU second (all threads together). */
  perCpuSecond: number;
  unit: string;
}

function row(
  name: string,
  threads: number,
  t: { wall: number; cpu: number },
  work: number,
  unit: string,
): Row {
  return {
    case: name,
    kernels: cpuKernels(),
    threads,
    seconds: t.wall,
    value: work / t.wall,
    perCpuSecond: work / t.cpu,
    unit,
  };
}

const SIZES = [512, 1024, 2048];
/** The reference is slow: it runs the two smaller GEMMs only. */
const sizesFor = (kernels: string) => (kernels === 'ts' ? SIZES.slice(0, 2) : SIZES);
const gemmCase = (n: number) => `gemm ${n}³ (x·Wᵀ)`;

/** The kernel sets compared: the reference, WebAssembly and the best native one (when built). */
const KERNEL_SETS = ['ts', 'wasm', ...nativeIsas().slice(-1)];

/** numpy's a @ b.T (its BLAS: OpenBLAS in the pip wheels) on `threads` threads; null without numpy. */
function numpyRows(threads: number): Row[] | null {
  const script = `
import json, time, numpy as np
rows = []
for n in ${JSON.stringify(SIZES)}:
    a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)
    a @ b.T
    k, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        a @ b.T; k += 1
        if time.perf_counter() - t0 >= ${seconds}: break
    rows.append([n, (time.perf_counter() - t0) / k, (time.process_time() - c0) / k])
print(json.dumps(rows))`;
  const n = String(threads);
  try {
    const out = execFileSync('python3', ['-c', script], {
      env: { ...process.env, OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return (JSON.parse(out) as [number, number, number][]).map(([size, wall, cpu]) => ({
      ...row(gemmCase(size), threads, { wall, cpu }, (2 * size ** 3) / 1e9, 'GFLOP/s'),
      kernels: 'numpy',
    }));
  } catch {
    return null;
  }
}

/** Without numpy: a straightforward i-k-j loop compiled with -O3 -march=native, one thread (null without cc). */
function cLoopRows(): Row[] | null {
  const dir = mkdtempSync(join(tmpdir(), 'longshot-bench-'));
  try {
    const src = `#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(int c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(void) {
  int sizes[] = ${JSON.stringify(SIZES).replace('[', '{').replace(']', '}')};
  for (int s = 0; s < 3; s++) {
    int n = sizes[s];
    float *a = malloc(4L * n * n), *b = malloc(4L * n * n), *c = malloc(4L * n * n);
    for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = (float)(i % 7) / 7;
    int k = 0; double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    do {
      for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) c[(long)i * n + j] = 0;
        for (int t = 0; t < n; t++) for (int j = 0; j < n; j++) c[(long)i * n + j] += a[(long)i * n + t] * b[(long)t * n + j];
      }
      k++;
    } while (now(CLOCK_MONOTONIC) - t0 < ${seconds});
    printf("%d %g %g %g\\n", n, (now(CLOCK_MONOTONIC) - t0) / k, (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / k, c[1]);
    free(a); free(b); free(c);
  }
}`;
    writeFileSync(join(dir, 'loop.c'), src);
    execFileSync('cc', ['-O3', '-march=native', join(dir, 'loop.c'), '-o', join(dir, 'loop')], {
      stdio: 'ignore',
    });
    return execFileSync(join(dir, 'loop'), { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((line) => {
        const [size, wall, cpu] = line.split(' ').map(Number);
        return {
          ...row(gemmCase(size), 1, { wall, cpu }, (2 * size ** 3) / 1e9, 'GFLOP/s'),
          kernels: 'C loop -O3',
        };
      });
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs this file again with LONGSHOT_CPU_THREADS=1 for the single-thread column. */
function singleThreadRows(): Row[] {
  const out = execFileSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--child'],
    {
      env: { ...process.env, LONGSHOT_CPU_THREADS: '1' },
      encoding: 'utf8',
    },
  );
  return JSON.parse(out.slice(out.indexOf('[')));
}

async function measure(): Promise<Row[]> {
  const threads = await warmUp();
  const rows: Row[] = [];
  for (const kernels of KERNEL_SETS) {
    useCpuKernels(kernels);
    rows.push(...measureKernels(threads));
  }
  return rows;
}

function measureKernels(threads: number): Row[] {
  const rows: Row[] = [];
  for (const n of sizesFor(cpuKernels())) {
    const a = ops.tensor(cpu, rand(n * n), [n, n]);
    const w = ops.tensor(cpu, rand(n * n), [n, n]);
    const t = time(() => ops.matmul(a, w, { transB: true }));
    rows.push(row(gemmCase(n), threads, t, (2 * n ** 3) / 1e9, 'GFLOP/s'));
    a.dispose();
    w.dispose();
  }
  {
    const [L, H, P, N] = [4096, 8, 64, 64];
    const inputs = {
      x: ops.tensor(cpu, rand(L * H * P), [1, L, H, P]),
      dt: ops.tensor(cpu, rand(L * H, 0.01, 0.2), [1, L, H]),
      A: ops.tensor(cpu, rand(H, -2, -0.1), [H]),
      B: ops.tensor(cpu, rand(L * N), [1, L, 1, N]),
      C: ops.tensor(cpu, rand(L * N), [1, L, 1, N]),
      D: ops.tensor(cpu, rand(H), [H]),
    };
    const t = time(() => {
      const { y, state } = ops.ssdScan(inputs, 256);
      return [y, state];
    });
    rows.push(row(`ssd scan L${L} H${H} P${P} N${N} chunk 256`, threads, t, L, 'tokens/s'));
  }
  {
    const [L, hq, hkv, d] = [1024, 16, 2, 128];
    const q = ops.tensor(cpu, rand(L * hq * d), [1, L, hq, d]);
    const k = ops.tensor(cpu, rand(L * hkv * d), [1, L, hkv, d]);
    const t = time(() => ops.attention(q, k, k, { causal: true }).out);
    rows.push(row(`attention causal L${L} hq${hq} hkv${hkv} d${d}`, threads, t, L, 'tokens/s'));
    const cacheLen = 4096;
    const kc = ops.tensor(cpu, rand(cacheLen * hkv * d), [1, cacheLen, hkv, d]);
    const q1 = ops.tensor(cpu, rand(hq * d), [1, 1, hq, d]);
    const t1 = time(() => ops.attention(q1, kc, kc, { causal: true, queryOffset: cacheLen - 1 }).out);
    rows.push(row(`attention decode 1 query, ${cacheLen} cached keys`, threads, t1, 1, 'tokens/s'));
  }
  {
    // A Mamba-2 layer's shapes at 1024 tokens: conv1d over x‖B‖C, the gated grouped norm, SwiGLU, a LayerNorm.
    const [L, C, W, D] = [1024, 2304, 4, 2048];
    const x = ops.tensor(cpu, rand(L * C), [1, L, C]);
    const w = ops.tensor(cpu, rand(C * W), [C, 1, W]);
    const b = ops.tensor(cpu, rand(C), [C]);
    const t = time(() => {
      const { y, state } = ops.conv1dCausal(x, w, b, { silu: true });
      return [y, state];
    });
    rows.push(row(`conv1d causal silu L${L} C${C} W${W}`, threads, t, (L * C) / 1e6, 'M elem/s'));
    const h = ops.tensor(cpu, rand(L * D), [L, D]);
    const z = ops.tensor(cpu, rand(L * D), [L, D]);
    const nw = ops.tensor(cpu, rand(D), [D]);
    const tn = time(() => ops.rmsNorm(h, nw, { eps: 1e-5, gate: z, groupSize: D / 8 }));
    rows.push(row(`gated rmsnorm ${L}×${D}, 8 groups`, threads, tn, (L * D) / 1e6, 'M elem/s'));
    const tl = time(() => ops.layerNorm(h, nw, nw, 1e-5));
    rows.push(row(`layernorm ${L}×${D}`, threads, tl, (L * D) / 1e6, 'M elem/s'));
    const ts = time(() => ops.siluMul(h, z));
    rows.push(row(`silu_mul ${L}×${D}`, threads, ts, (L * D) / 1e6, 'M elem/s'));
    const tg = time(() => ops.gelu(h));
    rows.push(row(`gelu (erf) ${L}×${D}`, threads, tg, (L * D) / 1e6, 'M elem/s'));
    for (const t of [x, w, b, h, z, nw]) t.dispose();
  }
  return rows;
}

if (process.argv.includes('--child')) {
  console.log(JSON.stringify(await measure()));
} else {
  const multi = await measure();
  const single = cpuThreads() > 1 ? singleThreadRows() : [];
  const peers = [
    ...new Set(
      [1, cpuThreads()].map((threads) => numpyRows(threads) ?? (threads === 1 ? cLoopRows() : null)),
    ),
  ]
    .flat()
    .filter((r): r is Row => r !== null);
  // Rows grouped by case, then threads, so each kernel set sits beside its peer.
  const order = [...new Set([...SIZES.map(gemmCase), ...multi.map((r) => r.case)])];
  const all = [...single, ...multi, ...peers].sort(
    (x, y) => order.indexOf(x.case) - order.indexOf(y.case) || x.threads - y.threads,
  );
  // Other work on the machine skews every number: the 1-minute load average is recorded with them.
  const load = loadavg()[0];
  console.log(
    `CPU backend on ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} CPUs, load ${load.toFixed(1)}), ${cpuThreads()} threads, Node ${process.version}, wasm module ${wasmModule()}\n`,
  );
  console.log(
    `${'case'.padEnd(48)} ${'kernels'.padEnd(10)} ${'threads'.padStart(7)} ${'ms/call'.padStart(10)} ${'value'.padStart(10)} ${'per CPU-s'.padStart(10)}  unit`,
  );
  for (const r of all)
    console.log(
      `${r.case.padEnd(48)} ${r.kernels.padEnd(10)} ${String(r.threads).padStart(7)} ${(r.seconds * 1000).toFixed(2).padStart(10)} ${r.value.toFixed(2).padStart(10)} ${r.perCpuSecond.toFixed(2).padStart(10)}  ${r.unit}`,
    );
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    `${dir}cpu_ops.json`,
    `${JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, cpus: cpus().length, load, node: process.version, wasm: wasmModule(), rows: all }, null, 2)}\n`,
  );
}
