import { availableParallelism } from 'node:os';
import { isMainThread, Worker } from 'node:worker_threads';
import { cpuKernels } from './kernels.js';
import type { TaskName } from './tasks.js';

/**
 * A persistent pool of worker threads that share the CPU backend's SharedArrayBuffer storage. Ops stay
 * synchronous: `parallelFor` posts row ranges to the ready workers, computes the first range itself, then
 * blocks on a shared counter with Atomics.wait until every worker has finished. Workers are unref'd so they
 * never keep the process alive, and one that is still starting is simply not used (no deadlock: readiness
 * is a shared flag, not a message the blocked main thread would have to receive).
 */

/** Threads to use (main included): LONGSHOT_CPU_THREADS or os.availableParallelism(). */
export function cpuThreads(): number {
  const env = Number(process.env.LONGSHOT_CPU_THREADS);
  return Number.isInteger(env) && env >= 1 ? env : availableParallelism();
}

// ctl[0]: finished jobs of the current call; ctl[1]: 1 when a job threw; ctl[2 + i]: worker i is ready.
interface Pool {
  workers: Worker[];
  ctl: Int32Array;
  error: Uint8Array;
}

const ERROR_BYTES = 4096;
let pool: Pool | null = null;
/** Set while a call runs, so a kernel that calls parallelFor again (never expected) runs inline. */
let busy = false;
let splitCalls = 0;

/** How many calls so far were split across threads (tests check that the worker path really ran). */
export const parallelCalls = (): number => splitCalls;

/**
 * The built worker.js runs as it is. Under tsx (this module is pool.ts) the worker thread does not get the
 * parent's TypeScript loader, so a tiny bootstrap registers tsx there before importing worker.ts.
 */
function spawn(workerData: object): Worker {
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL('./worker.js', import.meta.url), { workerData });
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const entry = JSON.stringify(new URL('./worker.ts', import.meta.url).href);
  const code = `import(${api}).then((tsx) => { tsx.register(); return import(${entry}); });`;
  return new Worker(code, { eval: true, workerData });
}

function start(threads: number): Pool {
  const n = threads - 1;
  const ctl = new Int32Array(new SharedArrayBuffer(4 * (2 + n)));
  const error = new Uint8Array(new SharedArrayBuffer(ERROR_BYTES));
  const workers: Worker[] = [];
  for (let i = 0; i < n; i++) {
    const w = spawn({ ctl, error, index: i });
    w.unref();
    // A worker that dies is dropped from the pool (its ready flag is cleared), never waited for.
    w.on('error', () => Atomics.store(ctl, 2 + i, 0));
    w.on('exit', () => Atomics.store(ctl, 2 + i, 0));
    workers.push(w);
  }
  return { workers, ctl, error };
}

/** Set when workers cannot be started here (e.g. no tsx to bootstrap them): everything runs inline. */
let unavailable = false;

function getPool(): Pool | null {
  if (!isMainThread || unavailable) return null;
  if (!pool) {
    const threads = cpuThreads();
    if (threads < 2) return null;
    try {
      pool = start(threads);
    } catch {
      unavailable = true;
      return null;
    }
  }
  return pool;
}

/** Workers that have finished loading. */
function readyWorkers(p: Pool): number[] {
  const out: number[] = [];
  for (let i = 0; i < p.workers.length; i++) if (Atomics.load(p.ctl, 2 + i) === 1) out.push(i);
  return out;
}

/** Starts the pool (if threads > 1) and resolves once every worker is ready (benchmarks, tests). */
export async function warmUp(timeoutMs = 20_000): Promise<number> {
  const p = getPool();
  if (!p) return 1;
  const t0 = Date.now();
  while (readyWorkers(p).length < p.workers.length && Date.now() - t0 < timeoutMs)
    await new Promise((r) => setTimeout(r, 5));
  return readyWorkers(p).length + 1;
}

/**
 * Runs task(args, lo, hi) over [0, total) split into contiguous ranges of at least `grain` units, across the
 * calling thread and the ready workers; `local` is the same function, called directly on this thread.
 * `args` must hold only structured-cloneable values; typed arrays over SharedArrayBuffers are shared, not
 * copied, which is how workers write their results.
 */
export function parallelFor<A>(
  task: TaskName,
  args: A,
  total: number,
  grain: number,
  local: (args: A, lo: number, hi: number) => void,
): void {
  const p = busy ? null : getPool();
  const helpers = p ? readyWorkers(p) : [];
  const parts = Math.min(helpers.length + 1, Math.floor(total / Math.max(grain, 1)));
  if (!p || parts < 2) {
    local(args, 0, total);
    return;
  }
  const bounds = (i: number) => Math.round((total * i) / parts);
  splitCalls++;
  Atomics.store(p.ctl, 0, 0);
  Atomics.store(p.ctl, 1, 0);
  const kernels = cpuKernels();
  for (let i = 1; i < parts; i++)
    p.workers[helpers[i - 1]].postMessage({ task, args, lo: bounds(i), hi: bounds(i + 1), kernels });
  busy = true;
  let localError: unknown = null;
  try {
    local(args, 0, bounds(1));
  } catch (e) {
    localError = e;
  }
  const posted = parts - 1;
  for (let done = Atomics.load(p.ctl, 0); done < posted; done = Atomics.load(p.ctl, 0))
    Atomics.wait(p.ctl, 0, done);
  busy = false;
  if (localError) throw localError;
  if (Atomics.load(p.ctl, 1) === 1) {
    const len = p.error.indexOf(0);
    const msg = new TextDecoder().decode(p.error.slice(0, len < 0 ? ERROR_BYTES : len));
    throw new Error(`cpu worker: ${task} failed: ${msg}`);
  }
}
