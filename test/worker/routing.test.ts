/**
 * Video-aware scheduling: once a worker holds a video's encoding, later questions about that video go to it
 * while it is idle, even when another idle worker could take them, so the video is encoded once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { JobSpec } from '../../src/worker/index.js';
import { jobResults, type LongshotWorker, startWorker, submitJobs } from '../../src/worker/index.js';
import { type NeedleVideo, needleVideos, RedisServer } from './fixtures.js';

describe('video-aware scheduling', () => {
  let redis: RedisServer;
  let dir: string;
  let clips: NeedleVideo[];
  const workers: LongshotWorker[] = [];
  before(async () => {
    redis = await RedisServer.start();
    dir = mkdtempSync(join(tmpdir(), 'longshot-worker-routing-'));
    clips = await needleVideos(join(dir, 'videos'), 1);
  });
  after(async () => {
    for (const w of workers) await w.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends questions about a held video to its holder', async (t) => {
    const o = { redis: redis.url };
    const job = (i: number): JobSpec => ({
      id: `r${i}`,
      video: clips[0].video,
      questions: [clips[0].question],
      maxNewTokens: 4,
    });
    const client = new Redis(redis.url);
    t.after(() => client.disconnect());
    const answer = async (spec: JobSpec) => {
      await submitJobs([spec], o);
      const [r] = await jobResults([spec], { ...o, wait: true, pollMs: 50 });
      // The next question comes once the holder says it is idle again.
      while ((await client.get('longshot:longshot:alive:holder')) !== 'idle')
        await new Promise((r) => setTimeout(r, 20));
      return r;
    };
    const routed: string[] = [];
    workers.push(await startWorker({ ...o, device: 'cpu', id: 'holder' }));
    assert.equal((await answer(job(0)))?.worker, 'holder');
    workers.push(
      await startWorker({
        ...o,
        device: 'cpu',
        id: 'other',
        log: (l) => l.includes('routed') && routed.push(l),
      }),
    );
    for (let i = 1; i <= 6; i++) assert.equal((await answer(job(i)))?.worker, 'holder', `job r${i}`);
    // Each question the other worker took first was handed over rather than answered.
    for (const line of routed) assert.match(line, /routed to holder, which holds/);
  });
});
