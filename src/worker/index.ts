/** Batch video QA over a BullMQ queue on Redis: workers (one per GPU) and batch submission. */
export {
  type BatchOptions,
  type BatchStatus,
  batchStatus,
  jobResults,
  type SubmitOptions,
  submitJobs,
} from './batch.js';
export { EncodingsDir } from './encodings-dir.js';
export { type AnswerRecord, type JobResult, type JobSpec, readJobs } from './jobs.js';
export { DEFAULT_ATTEMPTS } from './queues.js';
export { DEFAULT_QUEUE } from './store.js';
export type { HandleStore } from './video-cache.js';
export { type LongshotWorker, startWorker, type WorkerOptions } from './worker.js';
