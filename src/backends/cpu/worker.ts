/** Worker-thread entry of the CPU pool: runs task ranges posted by `parallelFor` and counts them done. */
import { parentPort, workerData } from 'node:worker_threads';
import { collector } from './collect.js';
import { type CpuKernels, cpuKernels, useCpuKernels } from './kernels.js';
import { TASKS, type TaskName } from './tasks.js';

// A task's views die with it; they are young objects, so a minor collection frees their memory.
const dropped = collector('minor', 64 << 20);

/** Bytes of the shared arrays a task's arguments view (arrays one level deep included). */
function viewedBytes(args: unknown): number {
  if (ArrayBuffer.isView(args)) return args.byteLength;
  if (typeof args !== 'object' || args === null) return 0;
  let n = 0;
  for (const v of Object.values(args)) if (ArrayBuffer.isView(v)) n += v.byteLength;
  return n;
}

const { ctl, error, index } = workerData as { ctl: Int32Array; error: Uint8Array; index: number };

parentPort!.on(
  'message',
  (m: { task: TaskName; args: never; lo: number; hi: number; kernels: CpuKernels }) => {
    try {
      if (m.kernels !== cpuKernels()) useCpuKernels(m.kernels); // the caller's choice
      TASKS[m.task](m.args, m.lo, m.hi);
    } catch (e) {
      const bytes = new TextEncoder().encode(String((e as Error)?.stack ?? e));
      error.fill(0);
      error.set(bytes.subarray(0, error.length - 1));
      Atomics.store(ctl, 1, 1);
    }
    Atomics.add(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    dropped(viewedBytes(m.args)); // after the count: the caller is not kept waiting
  },
);

Atomics.store(ctl, 2 + index, 1);
