/**
 * What longshot keeps in Redis beside BullMQ's own keys, all under `longshot:<queue>:`:
 *   results            hash  job id → JobResult JSON (written once: HSETNX, so a job run twice keeps one result)
 *   submitted          set   job ids ever submitted (a resubmitted file adds nothing twice)
 *   workers            set   worker ids that registered
 *   alive:<worker>     'idle' | 'busy', expiring unless the worker refreshes it (a heartbeat)
 *   holders:<video>    set   workers holding that video's encoding in memory
 *   videos:<worker>    set   the videos a worker holds (to clean `holders` when it dies)
 */
import { Redis } from 'ioredis';
import { InputError } from '../errors.js';
import { DEFAULT_QUEUE } from './defaults.js';
import type { JobResult } from './jobs.js';

export { DEFAULT_QUEUE };

/**
 * A Redis client. A worker's waits through any outage (BullMQ requires maxRetriesPerRequest null for
 * workers); a batch command's rides out a restart but gives up after a few seconds.
 */
export function connect(url: string, patient: boolean): Redis {
  if (!/^rediss?:\/\//.test(url))
    throw new InputError(`--redis must be a redis:// or rediss:// URL, got '${url}'`);
  return new Redis(url, {
    maxRetriesPerRequest: patient ? null : 5,
    retryStrategy: (n) => Math.min(n * 200, 2000),
  });
}

export class Store {
  private readonly prefix: string;

  constructor(
    readonly redis: Redis,
    readonly queue: string,
  ) {
    this.prefix = `longshot:${queue}:`;
  }

  key(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  /** Writes `result` unless the job already has one; true when this call wrote it. */
  async writeResult(result: JobResult): Promise<boolean> {
    return (await this.redis.hsetnx(this.key('results'), result.id, JSON.stringify(result))) === 1;
  }

  async hasResult(id: string): Promise<boolean> {
    return (await this.redis.hexists(this.key('results'), id)) === 1;
  }

  /** The results of `ids`, in their order (undefined where a job has none yet). */
  async results(ids: readonly string[]): Promise<Array<JobResult | undefined>> {
    const out: Array<JobResult | undefined> = [];
    for (let i = 0; i < ids.length; i += 1000) {
      const raw = await this.redis.hmget(this.key('results'), ...ids.slice(i, i + 1000));
      for (const r of raw) out.push(r === null ? undefined : (JSON.parse(r) as JobResult));
    }
    return out;
  }

  /** Which of `ids` were submitted before. */
  async submitted(ids: readonly string[]): Promise<boolean[]> {
    const out: boolean[] = [];
    for (let i = 0; i < ids.length; i += 1000) {
      const flags = await this.redis.smismember(this.key('submitted'), ...ids.slice(i, i + 1000));
      for (const f of flags) out.push(f === 1);
    }
    return out;
  }

  async markSubmitted(ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += 1000)
      await this.redis.sadd(this.key('submitted'), ...ids.slice(i, i + 1000));
  }

  /** Registers a worker and refreshes its heartbeat, saying whether it is working on a job. */
  async heartbeat(worker: string, state: 'idle' | 'busy', ttlMs: number): Promise<void> {
    await this.redis
      .multi()
      .sadd(this.key('workers'), worker)
      .set(this.key('alive', worker), state, 'PX', ttlMs)
      .exec();
  }

  /** Worker ids that registered, with their state; 'dead' when the heartbeat expired. */
  async workers(): Promise<Map<string, 'idle' | 'busy' | 'dead'>> {
    const ids = await this.redis.smembers(this.key('workers'));
    const states = ids.length ? await this.redis.mget(...ids.map((w) => this.key('alive', w))) : [];
    return new Map(ids.map((w, i) => [w, (states[i] as 'idle' | 'busy' | null) ?? 'dead']));
  }

  async holders(video: string): Promise<string[]> {
    return this.redis.smembers(this.key('holders', video));
  }

  async hold(worker: string, video: string): Promise<void> {
    await this.redis
      .multi()
      .sadd(this.key('holders', video), worker)
      .sadd(this.key('videos', worker), video)
      .exec();
  }

  async release(worker: string, video: string): Promise<void> {
    await this.redis
      .multi()
      .srem(this.key('holders', video), worker)
      .srem(this.key('videos', worker), video)
      .exec();
  }

  /** Forgets a worker: its registration, heartbeat and every video it held. */
  async forget(worker: string): Promise<void> {
    const videos = await this.redis.smembers(this.key('videos', worker));
    const m = this.redis.multi();
    for (const v of videos) m.srem(this.key('holders', v), worker);
    await m
      .del(this.key('videos', worker), this.key('alive', worker))
      .srem(this.key('workers'), worker)
      .exec();
  }

  /** A short lock (SET NX PX) so that one worker at a time cleans up after a dead one. */
  async claim(what: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.key('claim', what), owner, 'PX', ttlMs, 'NX')) === 'OK';
  }
}
