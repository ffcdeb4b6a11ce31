/**
 * A shared encodings folder: a worker saves each video it encodes there, and another worker (or a restart)
 * answers from the saved encoding without decoding the video.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  EncodingsDir,
  type JobSpec,
  jobResults,
  type LongshotWorker,
  startWorker,
  submitJobs,
} from '../../src/worker/index.js';
import { type NeedleVideo, needleVideos, RedisServer } from './fixtures.js';

describe('worker --encodings-dir', () => {
  let redis: RedisServer;
  let dir: string;
  let clip: NeedleVideo;
  const workers: LongshotWorker[] = [];
  before(async () => {
    redis = await RedisServer.start();
    dir = mkdtempSync(join(tmpdir(), 'longshot-worker-encodings-'));
    [clip] = await needleVideos(join(dir, 'videos'), 1);
  });
  after(async () => {
    for (const w of workers) await w.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a second worker answers from the saved encoding without decoding the video', async (t) => {
    const o = { redis: redis.url, device: 'cpu' as const };
    const encodings = join(dir, 'encodings');
    const job = (id: string): JobSpec => ({
      id,
      video: clip.video,
      questions: [clip.question],
      maxNewTokens: 4,
    });
    const answer = async (spec: JobSpec) => {
      await submitJobs([spec], o);
      return (await jobResults([spec], { ...o, wait: true, pollMs: 50 }))[0];
    };

    const first = await startWorker({ ...o, id: 'first', handles: await EncodingsDir.open(encodings) });
    workers.push(first);
    const a = await answer(job('a'));
    await first.close();
    workers.pop();
    assert.equal(a?.worker, 'first');
    assert.equal(readdirSync(encodings).length, 1);

    // ffmpeg and ffprobe that always fail: the second worker cannot decode the video.
    const saved = { ffmpeg: process.env.LONGSHOT_FFMPEG, ffprobe: process.env.LONGSHOT_FFPROBE };
    process.env.LONGSHOT_FFMPEG = '/bin/false';
    process.env.LONGSHOT_FFPROBE = '/bin/false';
    t.after(() => {
      for (const [name, v] of [
        ['LONGSHOT_FFMPEG', saved.ffmpeg],
        ['LONGSHOT_FFPROBE', saved.ffprobe],
      ] as const)
        if (v === undefined) delete process.env[name];
        else process.env[name] = v;
    });
    const logs: string[] = [];
    const second = await startWorker({
      ...o,
      id: 'second',
      handles: await EncodingsDir.open(encodings, (l) => logs.push(l)),
    });
    workers.push(second);
    const b = await answer(job('b'));
    assert.equal(b?.worker, 'second');
    assert.equal(b?.error, undefined, b?.error?.message);
    assert.deepEqual(
      b?.answers?.map((r) => r.answer),
      a?.answers?.map((r) => r.answer),
    );
    assert.deepEqual(logs, []); // the saved file loaded without complaint
    // A video with other sampling is another encoding: it needs decoding, which fails here.
    const c = await answer({ ...job('c'), frames: 4 });
    assert.equal(c?.error?.kind, 'input');
    assert.equal(readdirSync(encodings).length, 1);
  });
});
