/**
 * The BullMQ queues: one shared queue that every worker takes jobs from, and one per worker for the jobs
 * routed to it because it holds their video's encoding.
 */
import type { JobsOptions } from 'bullmq';

/** The BullMQ job name of every longshot job (the payload is a JobSpec). */
export const JOB_NAME = 'ask';

export { DEFAULT_ATTEMPTS } from './defaults.js';

export function jobOptions(id: string, attempts: number): JobsOptions {
  return {
    jobId: id,
    attempts,
    backoff: { type: 'exponential', delay: 500 },
    // The result lives in longshot's own hash; failed jobs stay for dashboards (their error is a result too).
    removeOnComplete: true,
    removeOnFail: { count: 10_000 },
  };
}

/** The queue of jobs routed to one worker. */
export const personalQueue = (queue: string, worker: string): string => `${queue}-w-${worker}`;
