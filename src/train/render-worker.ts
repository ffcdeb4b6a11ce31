/** A needle render thread (render-pool.ts): renders the jobs it is sent, transferring the frames back. */
import { parentPort } from 'node:worker_threads';
import { varietyExamples } from './needle-v2.js';
import type { RenderJob } from './render-pool.js';

parentPort!.on('message', ({ id, job }: { id: number; job: RenderJob }) => {
  try {
    const examples = varietyExamples(job.spec, job.seed, job.frames, job.askings, job.id);
    // The askings share one frames buffer: transferred once.
    parentPort!.postMessage({ id, examples }, [examples[0].frames.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id, error: (e as Error).stack ?? String(e) });
  }
});
