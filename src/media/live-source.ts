/**
 * Frames of a live source, through ffmpeg: a growing file (read as it is written), an HTTP live stream or
 * any other URL ffmpeg reads (HLS, RTSP, RTMP, SRT, UDP), a capture device, or a pipe (stdin). ffmpeg's fps
 * filter samples the target rate; frames come out as PPM pictures at the source's size (a PPM carries its
 * size, so a pipe of unknown size works too) and are delivered as they arrive, with their stream time
 * (frame n at n / fps) and the wall clock when they arrived.
 */
import type { ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { InputError, UsageError } from '../errors.js';
import type { Frame } from './decode.js';
import { findTools, spawnTool, stopTool, type ToolOptions } from './ffmpeg.js';

export interface LiveSourceOptions extends ToolOptions {
  /** Frames per second to take. */
  fps: number;
  /** ffmpeg's input format (-f), e.g. 'mpegts' for a pipe; a device defaults to the platform's capture format. */
  format?: string;
  /** Read a finished file at its own pace, as if it were live (ffmpeg -re). */
  realtime?: boolean;
  /**
   * A file is followed as it grows; it (or a network stream) ends when no new data has come for this long
   * (default 10 s).
   */
  idleTimeoutSec?: number;
  /** The stream a pipe source reads (default: this process's stdin). */
  stdin?: NodeJS.ReadableStream;
  signal?: AbortSignal;
}

/** A sampled frame and the wall clock (ms since the epoch) when it arrived. */
export interface TimedFrame extends Frame {
  wallClockMs: number;
}

export type SourceKind = 'file' | 'url' | 'device' | 'pipe';

const URL_SCHEMES = /^(https?|rtsp|rtsps|rtmp|rtmps|srt|udp|tcp|rtp|hls):\/\//i;

/** What a source string names: '-' or 'pipe:' (stdin), 'device:<name>', a URL, else a file path. */
export function sourceKind(source: string): SourceKind {
  if (source === '-' || /^pipe:\d*$/.test(source)) return 'pipe';
  if (source.startsWith('device:')) return 'device';
  if (URL_SCHEMES.test(source)) return 'url';
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(source))
    throw new InputError(
      `${source}: unsupported URL scheme; a live source is a file, an http(s)/rtsp/rtmp/srt/udp URL, device:<name> or - (stdin)`,
    );
  return 'file';
}

/** What a source string names, checking what can be checked before watching: a file must exist. */
export async function checkSource(source: string): Promise<SourceKind> {
  const kind = sourceKind(source);
  if (kind === 'file' && !(await stat(source).catch(() => null))?.isFile())
    throw new InputError(
      `${source}: no such file (a live source is a file, a stream URL, device:<name> or - for stdin)`,
    );
  return kind;
}

const CAPTURE_FORMAT: Partial<Record<NodeJS.Platform, string>> = {
  linux: 'v4l2',
  darwin: 'avfoundation',
  win32: 'dshow',
};

/** ffmpeg's input arguments for a source. */
async function inputArgs(source: string, o: LiveSourceOptions): Promise<string[]> {
  const kind = sourceKind(source);
  const idle = String(Math.round((o.idleTimeoutSec ?? 10) * 1e6));
  const format = o.format ? ['-f', o.format] : [];
  const pace = o.realtime ? ['-re'] : [];
  switch (kind) {
    case 'pipe':
      return [...pace, ...format, '-i', 'pipe:0'];
    case 'device': {
      const f = o.format ?? CAPTURE_FORMAT[process.platform];
      if (!f) throw new UsageError(`no capture format known for ${process.platform}: pass one (--format)`);
      return ['-f', f, '-i', source.slice('device:'.length)];
    }
    case 'url':
      return [
        ...(/^rtsps?:/i.test(source) ? ['-rtsp_transport', 'tcp'] : []),
        '-rw_timeout',
        idle,
        ...pace,
        ...format,
        '-i',
        source,
      ];
    case 'file': {
      const s = await stat(source).catch(() => null);
      if (!s?.isFile())
        throw new InputError(`${source}: no such file (a live source is a file, a URL, device:<name> or -)`);
      return ['-follow', '1', '-rw_timeout', idle, ...pace, ...format, '-i', `file:${source}`];
    }
  }
}

/**
 * The source's frames at `fps`, in batches as they arrive; ends when the source ends (or stays idle past the
 * timeout), stops ffmpeg when the consumer stops or the signal aborts. A source ffmpeg cannot read is an
 * InputError quoting ffmpeg.
 */
export async function* liveFrames(source: string, o: LiveSourceOptions): AsyncGenerator<TimedFrame[]> {
  if (!(o.fps > 0)) throw new UsageError(`fps must be a positive number (got ${o.fps})`, 'fps');
  const pipe = sourceKind(source) === 'pipe';
  const args = [
    '-hide_banner',
    ...(pipe ? [] : ['-nostdin']),
    '-loglevel',
    'error',
    ...(await inputArgs(source, o)),
    '-map',
    '0:v:0',
    '-vf',
    `fps=${o.fps}`,
    '-f',
    'image2pipe',
    '-c:v',
    'ppm',
    'pipe:1',
  ];
  o.signal?.throwIfAborted();
  const child = spawnTool(findTools(o).ffmpeg, args, pipe ? 'pipe' : 'ignore');
  if (pipe) {
    const input = o.stdin ?? process.stdin;
    input.pipe(child.stdin!);
    child.stdin!.on('error', () => {}); // ffmpeg may exit before the pipe ends
  }
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('close', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  const onAbort = () => void stopTool(child);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const parser = new PpmStream();
  let index = 0;
  try {
    for await (const chunk of child.stdout! as AsyncIterable<Buffer>) {
      const now = Date.now();
      const batch = parser.push(chunk).map((p) => ({
        ...p,
        index,
        timestampSec: index++ / o.fps,
        wallClockMs: now,
      }));
      if (batch.length) yield batch;
    }
    o.signal?.throwIfAborted();
    const code = await exited;
    if (!index) throw sourceError(source, stderr, code);
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    await stopTool(child as ChildProcess);
  }
}

function sourceError(source: string, stderr: string, code: number | null): InputError {
  const line =
    stderr.trim().split('\n').filter(Boolean).at(-1) ??
    (code === 0 ? 'no video frame came from it' : `ffmpeg exited with code ${code}`);
  return new InputError(`${source}: ffmpeg could not read it as video: ${line}`);
}

/** Splits a byte stream of binary PPM (P6, maxval 255) pictures. */
class PpmStream {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): { width: number; height: number; data: Uint8Array }[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: { width: number; height: number; data: Uint8Array }[] = [];
    for (;;) {
      const m = /^P6\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(this.#buf.subarray(0, 64).toString('latin1'));
      if (!m) break;
      const [width, height] = [Number(m[1]), Number(m[2])];
      const size = width * height * 3;
      const start = m[0].length;
      if (this.#buf.length < start + size) break;
      out.push({ width, height, data: new Uint8Array(this.#buf.subarray(start, start + size)) });
      this.#buf = this.#buf.subarray(start + size);
    }
    return out;
  }
}
