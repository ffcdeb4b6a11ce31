/**
 * Batch video QA throughput against the number of workers (issue 26): a Redis server, N `longshot worker`
 * processes (src/worker, BullMQ) and a jobs file of (video, questions) jobs, each about its own synthetic video.
 * All workers load the model at once and answer one warm-up job each (from their own queues); phases then run
 * from the most workers down (4, 2, 1: workers are stopped in between), each with fresh jobs, more than its
 * workers can finish in the window. Measured per phase:
 * videos/hour and questions/hour over the window, the mean job time, the share of the workers' time with no
 * job in hand (waiting on the queue), and with CUDA the GPU's utilisation and memory (nvidia-smi, every 0.5 s).
 * Job spans are BullMQ's `active` and `completed` events as this process receives them.
 *
 * The model is Vamba-7B's architecture with random bf16 weights (bench/random-checkpoint.ts, written once into
 * the work folder); `--device cpu` runs the same code with the tiny needle Vamba (a smoke test).
 *
 *   node --import tsx bench/batch_scaling.ts --out "$OUT/scaling"            # GPU machine (bench/gpu/scaling.sh)
 *   node --import tsx bench/batch_scaling.ts --device cpu --workers 1,2 --window 20
 *   options: --workers 1,2,4 --gpus 1 (workers go to cuda:0 … cuda:gpus-1 in turn) --window 30 (s per phase)
 *            --jobs 10 (per worker per phase) --questions 4 --frames 256 --size 448x252 --max-new-tokens 32
 *            --model DIR --redis-server PATH (default .redis/run.sh from scripts/redis-pack.sh, else
 *            redis-server) --port 6390 --out .bench-out/scaling
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Queue, QueueEvents } from 'bullmq';
import { findTools } from '../src/media/ffmpeg.js';
import { jobResults, submitJobs } from '../src/worker/batch.js';
import { JOB_NAME, jobOptions, personalQueue } from '../src/worker/queues.js';
import { writeRandomVamba } from './random-checkpoint.js';
import {
  type PhaseMetrics,
  phaseMetrics,
  type Span,
  scalingEfficiency,
  scalingJobs,
} from './scaling-metrics.js';

const { values: args } = parseArgs({
  options: {
    device: { type: 'string', default: 'cuda' },
    workers: { type: 'string', default: '1,2,4' },
    gpus: { type: 'string', default: '1' },
    window: { type: 'string' },
    jobs: { type: 'string', default: '10' },
    questions: { type: 'string', default: '4' },
    frames: { type: 'string' },
    size: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    model: { type: 'string' },
    'redis-server': { type: 'string' },
    port: { type: 'string', default: '6390' },
    out: { type: 'string', default: '.bench-out/scaling' },
  },
});
const ROOT = resolve(import.meta.dirname, '..');
const CPU = args.device === 'cpu';
if (!CPU && args.device !== 'cuda') throw new Error(`--device must be cpu or cuda, got '${args.device}'`);
const WORKERS = args.workers.split(',').map(Number);
const GPUS = Number(args.gpus);
const WINDOW_MS = Number(args.window ?? (CPU ? 20 : 30)) * 1000;
const QUESTIONS = Number(args.questions);
const FRAMES = Number(args.frames ?? (CPU ? 16 : 256));
const SIZE = args.size ?? (CPU ? '112x112' : '448x252');
const MAX_NEW = Number(args['max-new-tokens'] ?? (CPU ? 8 : 32));
const QUEUE = 'scaling';
const REDIS_URL = `redis://127.0.0.1:${args.port}`;
const log = (line: string) => console.error(`[${((performance.now() - START) / 1000).toFixed(1)} s] ${line}`);
const START = performance.now();

/** Waits until `child` prints a line matching `ready` (on stdout or stderr), or fails with its output. */
function whenReady(child: ChildProcess, ready: RegExp, what: string, timeoutMs: number, logFile: string) {
  const sink = createWriteStream(logFile);
  return new Promise<void>((ok, fail) => {
    let seen = '';
    const timer = setTimeout(
      () => fail(new Error(`${what}: not ready after ${timeoutMs / 1000} s (${logFile})`)),
      timeoutMs,
    );
    const watch = (chunk: Buffer) => {
      sink.write(chunk);
      seen = (seen + chunk.toString()).slice(-4000);
      if (ready.test(seen)) {
        clearTimeout(timer);
        ok();
      }
    };
    child.stdout?.on('data', watch);
    child.stderr?.on('data', watch);
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`${what} exited (${code}): ${seen.split('\n').slice(-5).join(' | ')}`));
    });
  });
}

async function stop(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** GPU utilisation (%) and memory (MiB) every 0.5 s, with the time of each sample. */
function sampleGpu(): { samples: Array<[number, number, number]>; child?: ChildProcess } {
  const samples: Array<[number, number, number]> = [];
  if (CPU) return { samples };
  const child = spawn(
    'nvidia-smi',
    ['--query-gpu=utilization.gpu,memory.used', '--format=csv,noheader,nounits', '-lms', '500'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  child.on('error', () => log('nvidia-smi not available: no GPU utilisation'));
  let rest = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop() ?? '';
    // One line per GPU per sample: summed memory, mean utilisation over the GPUs of a sample.
    for (const line of lines) {
      const [util, mem] = line.split(',').map(Number);
      if (Number.isFinite(util)) samples.push([Date.now(), util, mem]);
    }
  });
  return { samples, child };
}

function gpuOver(samples: ReadonlyArray<[number, number, number]>, t0: number, t1: number) {
  const inside = samples.filter(([t]) => t >= t0 && t <= t1);
  if (!inside.length) return { gpuUtil: null, gpuMemMiB: null };
  return {
    gpuUtil: inside.reduce((a, s) => a + s[1], 0) / inside.length,
    gpuMemMiB: Math.max(...inside.map((s) => s[2])),
  };
}

function makeVideo(dir: string): string {
  const [w, h] = SIZE.split('x').map(Number);
  const path = join(dir, 'base.mp4');
  const r = spawnSync(
    findTools().ffmpeg,
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${w}x${h}:rate=8`],
      ...['-t', String(FRAMES / 8), '-c:v', 'mpeg4', '-q:v', '4', path],
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
  return path;
}

interface PhaseRow extends PhaseMetrics {
  efficiency?: number;
  gpuUtil: number | null;
  gpuMemMiB: number | null;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'batch-scaling-'));
  const children: ChildProcess[] = [];
  const gpu = sampleGpu();
  if (gpu.child) children.push(gpu.child);
  try {
    await mkdir(args.out, { recursive: true }); // with the workers' and the server's logs
    const packed = join(ROOT, '.redis/run.sh');
    const redisBin = args['redis-server'] ?? (existsSync(packed) ? packed : 'redis-server');
    const redis = spawn(
      redisBin,
      ['--port', args.port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', work],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(redis);
    await whenReady(
      redis,
      /Ready to accept connections/,
      'redis-server',
      20_000,
      join(args.out, 'redis.log'),
    );
    log(`redis-server on ${REDIS_URL}`);

    let model = args.model ?? join(ROOT, 'models/needle-vamba-tiny');
    let modelWriteS = 0;
    if (!args.model && !CPU) {
      const t = performance.now();
      model = join(work, 'vamba-7b-random');
      const bytes = await writeRandomVamba(model);
      modelWriteS = (performance.now() - t) / 1000;
      log(
        `wrote a random Vamba-7B checkpoint (${(bytes / 2 ** 30).toFixed(1)} GiB) in ${modelWriteS.toFixed(1)} s`,
      );
    }
    const base = makeVideo(work);
    /** A path of its own per job, so every job encodes its video (the cache is keyed by path). */
    const videoFor = (id: string) => {
      const p = join(work, `${id}.mp4`);
      symlinkSync(base, p);
      return p;
    };

    const events = new QueueEvents(QUEUE, { connection: { host: '127.0.0.1', port: Number(args.port) } });
    await events.waitUntilReady();
    const spans = new Map<string, Span>();
    events.on('active', ({ jobId }) =>
      spans.set(jobId, {
        job: jobId,
        worker: '',
        start: Date.now(),
        end: Infinity,
        answers: 0,
        error: false,
      }),
    );
    events.on('completed', ({ jobId }) => {
      const s = spans.get(jobId);
      if (s) s.end = Date.now();
    });
    const queue = new Queue(QUEUE, { connection: { host: '127.0.0.1', port: Number(args.port) } });

    // All workers load at once (one load time, not one per phase), each answers one warm-up job from its own
    // queue (kernels, allocator), then phases run from the most workers down, stopping workers in between.
    const workers: ChildProcess[] = [];
    const ids: string[] = [];
    const t = performance.now();
    const starting: Array<Promise<void>> = [];
    for (let k = 0; k < Math.max(...WORKERS); k++) {
      const id = `w${k}`;
      const device = CPU ? 'cpu' : `cuda:${k % GPUS}`;
      const w = spawn(
        process.execPath,
        [
          ...[
            '--import',
            'tsx',
            join(ROOT, 'src/cli/run.ts'),
            'worker',
            '--redis',
            REDIS_URL,
            '--queue',
            QUEUE,
          ],
          ...['--model', model, '--device', device, '--id', id, '--cached-videos', '1'],
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      workers.push(w);
      ids.push(id);
      children.push(w);
      starting.push(whenReady(w, / runs .* on /, `worker ${id}`, 240_000, join(args.out, `worker-${k}.log`)));
    }
    await Promise.all(starting);
    const workerLoadS = (performance.now() - t) / 1000;
    log(`${workers.length} worker(s) ready (${workerLoadS.toFixed(1)} s to load)`);
    const warm = scalingJobs('warm', workers.length, 1, videoFor, { frames: FRAMES, maxNewTokens: MAX_NEW });
    for (const [k, job] of warm.entries()) {
      const own = new Queue(personalQueue(QUEUE, ids[k]), { connection: queue.opts.connection });
      await own.add(JOB_NAME, job, jobOptions(job.id, 1));
      await own.close();
    }
    const tw = performance.now();
    await jobResults(warm, { redis: REDIS_URL, queue: QUEUE, wait: true, pollMs: 200 });
    const warmupS = (performance.now() - tw) / 1000;
    log(`warm-up: ${warmupS.toFixed(1)} s`);

    const rows: PhaseRow[] = [];
    for (const n of [...WORKERS].sort((x, y) => y - x)) {
      while (workers.length > n) {
        await stop(workers.pop() as ChildProcess, 30_000);
      }
      const jobs = scalingJobs(`n${n}`, n * Number(args.jobs), QUESTIONS, videoFor, {
        frames: FRAMES,
        maxNewTokens: MAX_NEW,
      });
      await writeFile(join(work, `jobs-n${n}.jsonl`), jobs.map((j) => JSON.stringify(j)).join('\n'));
      const t0 = Date.now();
      await submitJobs(jobs, { redis: REDIS_URL, queue: QUEUE, attempts: 1 });
      const phaseIds = new Set(jobs.map((j) => j.id));
      const mine = () => [...spans.values()].filter((s) => phaseIds.has(s.job));
      while (
        Date.now() < t0 + WINDOW_MS &&
        !(mine().length === jobs.length && mine().every((s) => s.end < Infinity))
      )
        await new Promise((r) => setTimeout(r, 200));
      const t1 = Math.min(Date.now(), t0 + WINDOW_MS);
      // The jobs left over are dropped; the ones in hand are waited for, so the next phase starts clean.
      await queue.drain();
      for (let i = 0; i < 600 && (await queue.getActiveCount()) > 0; i++)
        await new Promise((r) => setTimeout(r, 200));

      const results = await jobResults(jobs, { redis: REDIS_URL, queue: QUEUE });
      for (const [i, r] of results.entries()) {
        const s = spans.get(jobs[i].id);
        if (!s || !r) continue;
        s.worker = r.worker;
        s.answers = r.answers?.length ?? 0;
        s.error = r.error !== undefined;
        if (r.error) log(`${r.id}: ${r.error.kind}: ${r.error.message}`);
      }
      const m = phaseMetrics(mine(), n, t0, t1);
      rows.unshift({ ...m, ...gpuOver(gpu.samples, t0, t1) }); // the table goes from 1 worker up
      await save(rows, { modelWriteS, workerLoadS, warmupS }); // after every phase, so a run cut short keeps what it measured
      log(
        `${n} worker(s): ${m.videos} videos, ${m.questions} questions in ${m.elapsedS.toFixed(1)} s: ` +
          `${m.videosPerHour.toFixed(0)} videos/h, queue wait ${(100 * m.queueWaitShare).toFixed(1)} %`,
      );
    }
    await Promise.all(workers.map((w) => stop(w, 30_000)));
    await events.close();
    await queue.close();
    console.log(markdown(rows));
  } finally {
    for (const c of children.reverse()) await stop(c, 5_000);
    rmSync(work, { recursive: true, force: true });
  }
}

async function save(rows: PhaseRow[], times: Record<string, number>): Promise<void> {
  for (const [i, e] of scalingEfficiency(rows).entries()) rows[i].efficiency = e;
  const result = {
    device: CPU ? 'cpu' : `cuda (${GPUS} GPU${GPUS > 1 ? 's' : ''})`,
    gpuName: CPU ? null : gpuName(),
    model: args.model ?? (CPU ? 'models/needle-vamba-tiny' : 'Vamba-7B architecture, random bf16 weights'),
    ...times,
    video: { frames: FRAMES, size: SIZE },
    questionsPerJob: QUESTIONS,
    maxNewTokens: MAX_NEW,
    windowS: WINDOW_MS / 1000,
    phases: rows,
  };
  await mkdir(args.out, { recursive: true });
  await writeFile(join(args.out, 'batch_scaling.json'), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(join(args.out, 'batch_scaling_table.md'), markdown(rows));
}

function gpuName(): string | null {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n')[0] : null;
}

function markdown(rows: readonly PhaseRow[]): string {
  const f = (x: number | null | undefined, d = 0) => (x === null || x === undefined ? '–' : x.toFixed(d));
  const lines = [
    '| workers | videos/h | videos/h (shares) | questions/h | vs N × 1 worker | mean job (s) | queue wait | GPU util | GPU mem (GiB) | errors |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.workers} | ${f(r.videosPerHour)} | ${f(r.videoSharesPerHour)} | ${f(r.questionsPerHour)} | ${f(r.efficiency, 2)} | ${f(r.meanJobS, 1)} | ` +
        `${f(100 * r.queueWaitShare, 1)} % | ${r.gpuUtil === null ? '–' : `${f(r.gpuUtil)} %`} | ` +
        `${f(r.gpuMemMiB === null ? null : r.gpuMemMiB / 1024, 1)} | ${r.errors} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}

await main();
process.exit(0);
