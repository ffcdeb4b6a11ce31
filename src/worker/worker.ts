/**
 * A longshot worker: one model on one device, taking jobs from a BullMQ queue on Redis.
 *
 * Jobs come from the shared queue and from this worker's own queue. A shared job about a video that another
 * worker holds encoded, while that worker is idle, is routed to the holder's own queue instead of being
 * encoded twice. Results go to one Redis hash, written once per job id, so a job that runs twice (its worker
 * died after writing, a lock expired) still has exactly one result. A worker whose heartbeat stops has its own
 * queue moved back to the shared one by the others; BullMQ retries the job it was running once its lock
 * expires. Bad input (a missing or corrupt video) is an error result at once; any other failure is retried
 * and becomes the job's result after its last attempt.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { type Job, Queue, Worker } from 'bullmq';
import { capMessage, InputError, LongshotError, ModelError, UsageError } from '../errors.js';
import type { ModelLoadOptions } from '../facade/types.js';
import { VideoLM } from '../facade/video-lm.js';
import type { BatchOptions } from './batch.js';
import { type AnswerRecord, generationOfJob, type JobResult, type JobSpec, videoKey } from './jobs.js';
import { DEFAULT_ATTEMPTS, JOB_NAME, jobOptions, personalQueue } from './queues.js';
import { connect, DEFAULT_QUEUE, Store } from './store.js';
import { type HandleStore, VideoCache } from './video-cache.js';

export interface WorkerOptions extends BatchOptions {
  /** Checkpoint directory or hub id (default: the embedded model). */
  model?: string;
  device?: ModelLoadOptions['device'];
  /** Unique among the queue's workers (default: host name and process id). */
  id?: string;
  /**
   * How long a job stays locked without a sign of life from its worker (default 30 s): a worker that dies
   * mid-job has the job retried elsewhere after this long, and is declared dead after this long too.
   */
  lockDurationMs?: number;
  /** Encoded videos kept in memory (default 4). */
  cachedVideos?: number;
  /** Where encodings are saved and loaded (none by default: see HandleStore). */
  handles?: HandleStore;
  log?: (line: string) => void;
}

export interface LongshotWorker {
  readonly id: string;
  /** Finishes the job in hand, hands routed jobs back to the shared queue, and frees the model. */
  close(): Promise<void>;
  /** Stops at once: the job in hand is retried elsewhere once its lock expires. */
  kill(): Promise<void>;
}

export async function startWorker(o: WorkerOptions): Promise<LongshotWorker> {
  const log = o.log ?? (() => {});
  const id = (o.id ?? `${hostname()}-${process.pid}`).replace(/[^\w.-]/g, '_');
  const queueName = o.queue ?? DEFAULT_QUEUE;
  const lockDuration = o.lockDurationMs ?? 30_000;
  const model = await VideoLM.load(o.model, { device: o.device });
  const redis = connect(o.redis, true);
  const store = new Store(redis, queueName);
  const cache = new VideoCache(model, store, id, o.cachedVideos ?? 4, o.handles);
  const queues = new Map<string, Queue>();
  const queueOf = (name: string): Queue => {
    const q = queues.get(name) ?? new Queue(name, { connection: redis });
    queues.set(name, q);
    return q;
  };
  const shared = queueOf(queueName);
  const runsModel = (m: string) =>
    m === o.model || m === model.info.id || resolve(m) === resolve(model.info.dir);

  let busy = false;
  let closing = false;
  const beat = async () => {
    if (!closing) await store.heartbeat(id, busy ? 'busy' : 'idle', lockDuration);
  };
  await beat();

  /** An idle worker that holds the video and has nothing queued for it, if any. */
  async function idleHolder(key: string): Promise<string | undefined> {
    const holders = (await store.holders(key)).filter((w) => w !== id);
    if (!holders.length) return undefined;
    const states = await store.workers();
    for (const w of holders)
      if (states.get(w) === 'idle' && (await queueOf(personalQueue(queueName, w)).count()) === 0) return w;
    return undefined;
  }

  async function answer(job: Job<JobSpec>, routed: boolean): Promise<void> {
    const spec = job.data;
    if (await store.hasResult(spec.id)) return;
    if (spec.model !== undefined && !runsModel(spec.model))
      throw new ModelError(
        `job ${spec.id} asks for the model ${spec.model}; this worker runs ${model.info.id}`,
      );
    const key = videoKey(spec);
    if (!routed && !cache.has(key)) {
      const holder = await idleHolder(key);
      if (holder) {
        await queueOf(personalQueue(queueName, holder)).add(
          JOB_NAME,
          spec,
          jobOptions(spec.id, job.opts.attempts ?? DEFAULT_ATTEMPTS),
        );
        log(`${spec.id}: routed to ${holder}, which holds ${spec.video}`);
        return;
      }
    }
    const handle = await cache.get(key, spec);
    const answers: AnswerRecord[] = [];
    for (const question of spec.questions) {
      const r = await model.ask(handle, question, generationOfJob(spec)).result();
      answers.push({ question, answer: r.text, finishReason: r.finishReason, usage: r.usage });
      await job.updateProgress({ answered: answers.length, questions: spec.questions.length });
    }
    await finish(job, { answers });
    log(`${spec.id}: answered ${answers.length} question(s)`);
  }

  const finish = (job: Job<JobSpec>, r: Pick<JobResult, 'answers' | 'error'>) =>
    store.writeResult({
      id: job.data.id,
      video: job.data.video,
      ...r,
      worker: id,
      attempts: job.attemptsMade + 1,
    });

  // One job at a time on the device, whichever queue it came from.
  let turn: Promise<unknown> = Promise.resolve();
  const serially = (routed: boolean) => (job: Job<JobSpec>) => {
    const run = turn.then(async () => {
      busy = true;
      await beat();
      try {
        await answer(job, routed);
      } catch (e) {
        const badInput = e instanceof InputError || e instanceof UsageError;
        const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        const message = capMessage(e instanceof Error ? e.message : String(e));
        log(`${job.data.id}: ${badInput || last ? 'failed' : 'will retry'}: ${message}`);
        if (badInput || last)
          await finish(job, { error: { kind: e instanceof LongshotError ? e.kind : 'internal', message } });
        if (!badInput) throw e;
      } finally {
        busy = false;
        await beat(); // idle now: others may route jobs here
      }
    });
    turn = run.catch(() => {});
    return run;
  };
  const workerOptions = {
    connection: redis,
    concurrency: 1,
    lockDuration,
    stalledInterval: lockDuration,
    // A job whose worker dies this many times fails (`batch results` reports BullMQ's reason).
    maxStalledCount: 3,
  };
  const workers = [
    new Worker(queueName, serially(false), workerOptions),
    new Worker(personalQueue(queueName, id), serially(true), workerOptions),
  ];
  for (const w of workers) w.on('error', (e) => log(`redis: ${e.message}`));

  /** Moves a worker's routed jobs back to the shared queue and forgets it. */
  async function requeue(worker: string): Promise<number> {
    const q = queueOf(personalQueue(queueName, worker));
    const jobs = await q.getJobs(['waiting', 'prioritized', 'active', 'delayed']);
    for (const j of jobs)
      if (j?.id) await shared.add(JOB_NAME, j.data, jobOptions(j.id, j.opts.attempts ?? DEFAULT_ATTEMPTS));
    await q.obliterate({ force: true });
    await store.forget(worker);
    return jobs.length;
  }

  async function tend(): Promise<void> {
    await beat();
    for (const [w, state] of await store.workers())
      if (w !== id && state === 'dead' && (await store.claim(`requeue:${w}`, id, lockDuration)))
        log(`worker ${w} stopped: ${await requeue(w)} routed job(s) back to the shared queue`);
  }
  let tending = Promise.resolve();
  const timer = setInterval(() => {
    tending = tending.then(tend).catch((e: Error) => log(`redis: ${e.message}`));
  }, lockDuration / 3);

  async function stop(force: boolean): Promise<void> {
    closing = true;
    clearInterval(timer);
    await tending;
    await store.forget(id); // no more jobs routed here
    await Promise.all(workers.map((w) => w.close(force)));
    await requeue(id);
    cache.dispose();
    model.dispose();
    await Promise.all([...queues.values()].map((q) => q.close()));
    redis.disconnect();
  }
  log(`worker ${id} runs ${model.info.id} on ${model.info.device}, queue '${queueName}'`);
  return { id, close: () => stop(false), kill: () => stop(true) };
}
