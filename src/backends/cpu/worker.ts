/** Worker-thread entry of the CPU pool: runs task ranges posted by `parallelFor` and counts them done. */
import { parentPort, workerData } from 'node:worker_threads';
import { TASKS, type TaskName } from './tasks.js';

const { ctl, error, index } = workerData as { ctl: Int32Array; error: Uint8Array; index: number };

parentPort!.on('message', (m: { task: TaskName; args: never; lo: number; hi: number }) => {
  try {
    TASKS[m.task](m.args, m.lo, m.hi);
  } catch (e) {
    const bytes = new TextEncoder().encode(String((e as Error)?.stack ?? e));
    error.fill(0);
    error.set(bytes.subarray(0, error.length - 1));
    Atomics.store(ctl, 1, 1);
  }
  Atomics.add(ctl, 0, 1);
  Atomics.notify(ctl, 0);
});

Atomics.store(ctl, 2 + index, 1);
