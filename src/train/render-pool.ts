/**
 * Worker threads that render v2 needle videos (needle-v2.ts) while the trainer's main thread runs the model:
 * each job is one video's seed, so a job gives the same examples on any thread, in any order. Threads:
 * LONGSHOT_RENDER_THREADS (0, the default: render on the main thread).
 */
import { Worker } from 'node:worker_threads';
import type { NeedleSpec, RenderedExample } from './needle-v2.js';

export interface RenderJob {
  spec: NeedleSpec;
  seed: number;
  frames: number;
  askings: number;
  id: string;
}

/** LONGSHOT_RENDER_THREADS, or 0. */
export function renderThreads(): number {
  const n = Number(process.env.LONGSHOT_RENDER_THREADS ?? 0);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** The built render-worker.js as it is; under tsx a bootstrap registers tsx in the thread first (as backends/cpu/pool.ts). */
function spawn(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./render-worker.js', import.meta.url));
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const entry = JSON.stringify(new URL('./render-worker.ts', import.meta.url).href);
  return new Worker(`import(${api}).then((tsx) => { tsx.register(); return import(${entry}); });`, {
    eval: true,
  });
}

interface Pending {
  resolve: (v: RenderedExample[]) => void;
  reject: (e: Error) => void;
}

export class RenderPool {
  readonly #workers: { w: Worker; busy: number }[] = [];
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #closed = false;

  constructor(readonly threads: number) {
    for (let i = 0; i < threads; i++) {
      const w = spawn();
      const slot = { w, busy: 0 };
      w.on('message', (m: { id: number; examples?: RenderedExample[]; error?: string }) => {
        const p = this.#pending.get(m.id);
        if (!p) return;
        this.#pending.delete(m.id);
        slot.busy--;
        if (m.examples) p.resolve(m.examples);
        else p.reject(new Error(`needle render thread: ${m.error}`));
      });
      w.on('error', (e) => this.#fail(e));
      w.on('exit', () => {
        if (!this.#closed) this.#fail(new Error('a needle render thread exited'));
      });
      this.#workers.push(slot);
    }
  }

  #fail(e: Error): void {
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      p.reject(e);
    }
  }

  /** The job on the least busy thread. */
  run(job: RenderJob): Promise<RenderedExample[]> {
    if (this.#closed) return Promise.reject(new Error('the needle render pool is closed'));
    const slot = this.#workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.#next++;
    slot.busy++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      slot.w.postMessage({ id, job });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#fail(new Error('the needle render pool was closed'));
    await Promise.all(this.#workers.map(({ w }) => w.terminate()));
  }
}
