/**
 * 200 jobs over 4 `longshot worker` processes on the CPU (the embedded tiny model, 4 short needle videos),
 * with one worker killed (SIGKILL) while it works and Redis restarted mid-run: every job ends with exactly
 * one result, equal to the answer of a single process, and the surviving workers stop cleanly on SIGTERM.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { VideoLM } from '../../src/facade/video-lm.js';
import { readJobs, submitJobs } from '../../src/worker/index.js';
import { type NeedleVideo, needleVideos, RedisServer } from './fixtures.js';

const JOBS = 200;
const WORKERS = 4;
const QUESTIONS = ['What colour was the square?', 'What colour was the star?', 'What shape was there?'];

function cli(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
    env: { ...process.env, NODE_TEST_CONTEXT: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function output(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  const [code] = await once(child, 'exit');
  return { code, stdout, stderr };
}

describe('batch over several worker processes', () => {
  let redis: RedisServer;
  let dir: string;
  let clips: NeedleVideo[];
  const workers: ChildProcess[] = [];
  before(async () => {
    redis = await RedisServer.start();
    dir = mkdtempSync(join(tmpdir(), 'longshot-worker-'));
    clips = await needleVideos(join(dir, 'videos'), 4);
  });
  after(async () => {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers every job exactly once through a worker kill and a Redis restart, as one process does', async () => {
    const lines = Array.from({ length: JOBS }, (_, i) => {
      const clip = clips[i % clips.length];
      const own = [clip.question, QUESTIONS[i % QUESTIONS.length]];
      return {
        id: `q${i}`,
        video: relative(dir, clip.video), // relative to the jobs file
        ...(i % 10 === 0 ? { questions: own } : { question: own[(i >> 2) % 2] }),
        maxNewTokens: 4,
      };
    });
    const file = join(dir, 'jobs.jsonl');
    writeFileSync(file, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    const jobs = readJobs(file);
    assert.deepEqual(await submitJobs(jobs, { redis: redis.url }), { added: JOBS, skipped: 0 });
    const again = await output(cli(['batch', 'submit', file, '--redis', redis.url]));
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), { added: 0, skipped: JOBS });

    for (let i = 0; i < WORKERS; i++) {
      const w = cli([
        'worker',
        '--redis',
        redis.url,
        '--device',
        'cpu',
        '--id',
        `w${i}`,
        '--lock-duration',
        '6000',
      ]);
      workers.push(w);
      w.stdout?.resume();
      w.stderr?.resume();
    }
    // The answers of one process, computed while the workers run.
    const model = await VideoLM.load();
    const want = new Map<string, string>();
    for (const clip of clips) {
      const handle = await model.encodeVideo(clip.video);
      for (const q of new Set([clip.question, ...QUESTIONS]))
        want.set(`${clip.video}|${q}`, (await model.ask(handle, q, { maxNewTokens: 4 }).result()).text);
      handle.dispose();
    }
    model.dispose();

    const client = new Redis(redis.url, { maxRetriesPerRequest: null }).on('error', () => {});
    const results = 'longshot:longshot:results';
    const until = async (what: () => Promise<boolean>) => {
      while (!(await what())) await new Promise((r) => setTimeout(r, 100));
    };
    try {
      await until(async () => (await client.hlen(results)) >= 30);
      await until(async () => (await client.get('longshot:longshot:alive:w0')) === 'busy');
      workers[0].kill('SIGKILL');
      await until(async () => (await client.hlen(results)) >= 100);
      await redis.restart();
      await until(async () => (await client.hlen(results)) >= JOBS);
      assert.equal(await client.hlen(results), JOBS);
    } finally {
      client.disconnect();
    }

    const stopped = workers.slice(1).map((w) => once(w, 'exit'));
    for (const w of workers.slice(1)) w.kill('SIGTERM');
    for (const [code] of await Promise.all(stopped)) assert.equal(code, 0);

    const got = await output(cli(['batch', 'results', file, '--redis', redis.url]));
    assert.equal(got.code, 0, got.stderr);
    const out = got.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      out.map((r) => r.id),
      jobs.map((j) => j.id),
    );
    for (const [i, r] of out.entries()) {
      assert.equal(r.error, undefined, `${r.id}: ${JSON.stringify(r.error)}`);
      assert.deepEqual(
        r.answers.map((a: { question: string }) => a.question),
        jobs[i].questions,
      );
      for (const a of r.answers) assert.equal(a.answer, want.get(`${jobs[i].video}|${a.question}`), r.id);
    }
    assert.ok(new Set(want.values()).size > 1, 'the questions should not all have one answer');
    const status = await output(cli(['batch', 'status', file, '--redis', redis.url]));
    assert.deepEqual(JSON.parse(status.stdout).pending, 0);
  });
});
