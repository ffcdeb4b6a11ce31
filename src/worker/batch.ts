/**
 * Submitting a jobs file and reading its progress and results. Every call is idempotent: a job id that was
 * submitted before is not added again, and results come back in the file's order whenever they are asked for.
 */
import { Queue } from 'bullmq';
import { InputError, LongshotError } from '../errors.js';
import type { JobResult, JobSpec } from './jobs.js';
import { DEFAULT_ATTEMPTS, JOB_NAME, jobOptions } from './queues.js';
import { connect, DEFAULT_QUEUE, Store } from './store.js';

export interface BatchOptions {
  /** redis://host:port[/db] */
  redis: string;
  /** Queue name (default 'longshot'): workers of one queue serve one model. */
  queue?: string;
}

export interface SubmitOptions extends BatchOptions {
  /** Tries per job before its error becomes its result (a worker dying mid-job does not count). */
  attempts?: number;
}

export interface BatchStatus {
  total: number;
  answered: number;
  errors: number;
  pending: number;
  /** The shared queue's counts (all batches). */
  queue: { waiting: number; active: number; delayed: number; failed: number };
  workers: { idle: number; busy: number };
}

async function withStore<T>(o: BatchOptions, fn: (store: Store) => Promise<T>): Promise<T> {
  const redis = connect(o.redis, false);
  redis.on('error', () => {}); // reported below, once, if a command gives up
  try {
    return await fn(new Store(redis, o.queue ?? DEFAULT_QUEUE));
  } catch (e) {
    if (e instanceof LongshotError || redis.status === 'ready') throw e;
    throw new InputError(
      `cannot reach Redis at ${o.redis}: is the server running? (${(e as Error).message})`,
    );
  } finally {
    redis.disconnect();
  }
}

/** Adds the jobs not submitted before; returns how many were added and how many were already there. */
export async function submitJobs(
  jobs: readonly JobSpec[],
  o: SubmitOptions,
): Promise<{ added: number; skipped: number }> {
  return withStore(o, async (store) => {
    const seen = await store.submitted(jobs.map((j) => j.id));
    const fresh = jobs.filter((_, i) => !seen[i]);
    const queue = new Queue(store.queue, { connection: store.redis });
    try {
      const attempts = o.attempts ?? DEFAULT_ATTEMPTS;
      for (let i = 0; i < fresh.length; i += 500) {
        const chunk = fresh.slice(i, i + 500);
        // Added before being marked, so an interrupted submit is completed by running it again (BullMQ
        // ignores a job id it already holds).
        await queue.addBulk(
          chunk.map((j) => ({ name: JOB_NAME, data: j, opts: jobOptions(j.id, attempts) })),
        );
        await store.markSubmitted(chunk.map((j) => j.id));
      }
    } finally {
      await queue.close();
    }
    return { added: fresh.length, skipped: jobs.length - fresh.length };
  });
}

/** The results of `jobs` in their order; a job still running has none (or, with `wait`, is waited for). */
export async function jobResults(
  jobs: readonly JobSpec[],
  o: BatchOptions & { wait?: boolean; pollMs?: number },
): Promise<Array<JobResult | undefined>> {
  return withStore(o, async (store) => {
    const queue = new Queue(store.queue, { connection: store.redis });
    try {
      for (;;) {
        const results = await store.results(jobs.map((j) => j.id));
        if (results.every(Boolean)) return results;
        // A job BullMQ failed by itself (its workers kept dying on it) never reached a worker's error handler.
        for (const [i, job] of jobs.entries())
          if (!results[i]) results[i] = await failedResult(store, queue, job);
        if (!o.wait || results.every(Boolean)) return results;
        await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
      }
    } finally {
      await queue.close();
    }
  });
}

async function failedResult(store: Store, queue: Queue, spec: JobSpec): Promise<JobResult | undefined> {
  const job = await queue.getJob(spec.id);
  if (!job || !(await job.isFailed())) return undefined;
  const result: JobResult = {
    id: spec.id,
    video: spec.video,
    error: { kind: 'internal', message: job.failedReason },
    worker: '',
    attempts: job.attemptsMade,
  };
  await store.writeResult(result);
  return (await store.results([spec.id]))[0];
}

export async function batchStatus(jobs: readonly JobSpec[], o: BatchOptions): Promise<BatchStatus> {
  return withStore(o, async (store) => {
    const results = await store.results(jobs.map((j) => j.id));
    const errors = results.filter((r) => r?.error).length;
    const done = results.filter(Boolean).length;
    const queue = new Queue(store.queue, { connection: store.redis });
    try {
      const c = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
      const states = [...(await store.workers()).values()];
      return {
        total: jobs.length,
        answered: done - errors,
        errors,
        pending: jobs.length - done,
        queue: {
          waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
          active: c.active ?? 0,
          delayed: c.delayed ?? 0,
          failed: c.failed ?? 0,
        },
        workers: {
          idle: states.filter((s) => s === 'idle').length,
          busy: states.filter((s) => s === 'busy').length,
        },
      };
    } finally {
      await queue.close();
    }
  });
}
