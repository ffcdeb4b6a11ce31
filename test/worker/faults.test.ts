/**
 * Jobs that cannot be answered end as error results while the rest go on: a poison job (a model no worker
 * runs) fails after its attempts with the error recorded; a missing or corrupt video is an input error at once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jobResults, readJobs, startWorker, submitJobs } from '../../src/worker/index.js';
import { type NeedleVideo, needleVideos, RedisServer } from './fixtures.js';

describe('worker faults', () => {
  let redis: RedisServer;
  let dir: string;
  let clips: NeedleVideo[];
  before(async () => {
    redis = await RedisServer.start();
    dir = mkdtempSync(join(tmpdir(), 'longshot-worker-faults-'));
    clips = await needleVideos(join(dir, 'videos'), 1);
  });
  after(async () => {
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records a poison job after its attempts and an error result for a missing or corrupt video', async () => {
    writeFileSync(join(dir, 'corrupt.mp4'), Buffer.alloc(4096, 7));
    const lines = [
      { id: 'good', video: clips[0].video, question: clips[0].question, maxNewTokens: 4 },
      { id: 'poison', video: clips[0].video, question: 'Which model?', model: join(dir, 'no-such-model') },
      { id: 'missing', video: join(dir, 'nowhere.mp4'), question: 'What colour?' },
      { id: 'corrupt', video: 'corrupt.mp4', question: 'What colour?' },
      { id: 'after', video: clips[0].video, question: clips[0].question, maxNewTokens: 4 },
    ];
    writeFileSync(join(dir, 'jobs.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n'));
    const jobs = readJobs(join(dir, 'jobs.jsonl'));
    assert.deepEqual(await submitJobs(jobs, { redis: redis.url, attempts: 2 }), { added: 5, skipped: 0 });
    const worker = await startWorker({ redis: redis.url, device: 'cpu', id: 'solo' });
    try {
      const results = await jobResults(jobs, { redis: redis.url, wait: true, pollMs: 100 });
      const byId = Object.fromEntries(results.map((r) => [r?.id, r]));
      for (const id of ['good', 'after']) {
        assert.equal(byId[id]?.error, undefined, id);
        assert.equal(byId[id]?.answers?.length, 1, id);
      }
      assert.equal(byId.poison?.error?.kind, 'model');
      assert.match(byId.poison?.error?.message ?? '', /asks for the model .*no-such-model/);
      assert.equal(byId.poison?.attempts, 2);
      for (const id of ['missing', 'corrupt']) {
        assert.equal(byId[id]?.error?.kind, 'input', `${id}: ${JSON.stringify(byId[id])}`);
        assert.equal(byId[id]?.attempts, 1, id);
      }
      assert.match(byId.missing?.error?.message ?? '', /nowhere\.mp4/);
    } finally {
      await worker.close();
    }
  });
});
