/**
 * A real redis-server for the worker tests, in its own temp folder on a free port (no persistence, except
 * the snapshot a restart takes), and short needle videos with their questions.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { findTools } from '../../src/media/index.js';
import { generateDataset } from '../../src/needle/dataset.js';

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export class RedisServer {
  private proc?: ChildProcess;

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async start(): Promise<RedisServer> {
    const r = new RedisServer(mkdtempSync(join(tmpdir(), 'longshot-redis-')), await freePort());
    await r.launch();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private async launch(): Promise<void> {
    const proc = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    this.proc = proc;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      proc.once('error', reject);
      proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
      proc.stdout?.on('data', (d) => {
        out += d;
        if (out.includes('Ready to accept connections')) resolve();
      });
    });
    proc.removeAllListeners('exit');
  }

  /** Stops the server keeping its data (SHUTDOWN SAVE writes a snapshot the next start loads). */
  async restart(): Promise<void> {
    const exited = once(this.proc as ChildProcess, 'exit');
    const c = new Redis(this.url, { maxRetriesPerRequest: 1, retryStrategy: () => null });
    await c.shutdown('SAVE').catch(() => {}); // the connection closes as the server stops
    c.disconnect();
    await exited;
    await this.launch();
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      await once(p, 'exit');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface NeedleVideo {
  video: string;
  question: string;
}

/** `count` short needle videos (8 frames, 112×112) under `dir`, with their questions. */
export async function needleVideos(dir: string, count: number): Promise<NeedleVideo[]> {
  const jsonl = await generateDataset({
    out: dir,
    count,
    seed: 7,
    lengths: [8],
    fps: 2,
    width: 112,
    height: 112,
    needleFrames: 2,
    tasks: ['color'],
    ffmpegPath: findTools().ffmpeg,
  });
  return readFileSync(jsonl, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .map((s) => ({ video: join(dir, s.video), question: s.question }));
}
