// CPU backend throughput: GEMM GFLOP/s (1 thread and all threads), SSD scan and attention tokens/s.
// Run: npm run bench:cpu  (LONGSHOT_CPU_THREADS caps the pool; BENCH_SECONDS sets the time per case).
// Prints a table and writes bench/results/cpu_ops.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { cpuThreads, warmUp } from '../src/backends/cpu/pool.js';
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
  return { case: name, threads, seconds: t.wall, value: work / t.wall, perCpuSecond: work / t.cpu, unit };
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
  for (const n of [512, 1024, 2048]) {
    const a = ops.tensor(cpu, rand(n * n), [n, n]);
    const w = ops.tensor(cpu, rand(n * n), [n, n]);
    const t = time(() => ops.matmul(a, w, { transB: true }));
    rows.push(row(`gemm ${n}³ (x·Wᵀ)`, threads, t, (2 * n ** 3) / 1e9, 'GFLOP/s'));
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
  return rows;
}

if (process.argv.includes('--child')) {
  console.log(JSON.stringify(await measure()));
} else {
  const multi = await measure();
  const single = cpuThreads() > 1 ? singleThreadRows() : [];
  const all = [...single, ...multi];
  // Other work on the machine skews every number: the 1-minute load average is recorded with them.
  const load = loadavg()[0];
  console.log(
    `CPU backend on ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} CPUs, load ${load.toFixed(1)}), ${cpuThreads()} threads, Node ${process.version}\n`,
  );
  console.log(
    `${'case'.padEnd(48)} ${'threads'.padStart(7)} ${'ms/call'.padStart(10)} ${'value'.padStart(10)} ${'per CPU-s'.padStart(10)}  unit`,
  );
  for (const r of all)
    console.log(
      `${r.case.padEnd(48)} ${String(r.threads).padStart(7)} ${(r.seconds * 1000).toFixed(2).padStart(10)} ${r.value.toFixed(2).padStart(10)} ${r.perCpuSecond.toFixed(2).padStart(10)}  ${r.unit}`,
    );
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    `${dir}cpu_ops.json`,
    `${JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, cpus: cpus().length, load, node: process.version, rows: all }, null, 2)}\n`,
  );
}
