/**
 * Decoding chosen frames to RGB24 at a target size, streamed in batches.
 *
 * The chosen frames are split into runs; each run is one ffmpeg process that seeks (`-ss` before `-i`) to
 * the keyframe before its first frame, decodes forward, lets only the chosen frames through (`select` on
 * exact pts windows, at most MAX_SELECT_TERMS of them, so the expression's size never grows with the
 * frame count) and ends right after its last one (`trim`, so no ffmpeg version reads on to the end of the
 * file: 5.1 holds each selected frame back until the next one or the end of the stream). A new run (a
 * seek) starts whenever a keyframe lies far enough past the previous chosen frame that skipping there
 * saves decoding. Dense sampling thus becomes a few sequential passes; sparse sampling becomes a seek per
 * frame. A run whose frames are all keyframes decodes only keyframes (`-skip_frame nokey`);
 * `accuracy: 'keyframe'` (in video.ts) makes every run such a run by replacing each chosen frame with the
 * nearest keyframe. A stream without timestamps cannot be seeked in: one pass decodes every frame up to
 * the last chosen one and the others are dropped here.
 *
 * Backpressure: ffmpeg writes into a pipe that is read only when the consumer asks for the next batch,
 * so at most the batch being filled, the one the consumer holds and the next run's first frame are in
 * memory.
 */
import type { ChildProcess } from 'node:child_process';
import { InputError } from '../errors.js';
import { spawnTool, stopTool } from './ffmpeg.js';
import type { FrameIndex, MediaInfo } from './probe.js';
import type { Size } from './resize.js';

export interface Frame {
  /** Index of the frame in the video (presentation order). */
  index: number;
  /** Seconds from the video's first frame (its real timestamp, so VFR is right). */
  timestampSec: number;
  width: number;
  height: number;
  /** RGB24, row-major HWC, width·height·3 bytes. */
  data: Uint8Array;
}

export interface DecodePlanOptions {
  /**
   * Start a new ffmpeg run (seek) when that skips decoding at least this many frames (default 16; an
   * ffmpeg start costs a few milliseconds, about what decoding that many 720p frames costs).
   */
  seekGainFrames?: number;
  /** Most frames one run selects (its `select` has a term per frame; default and maximum MAX_SELECT_TERMS). */
  maxFramesPerRun?: number;
  /**
   * Bytes of frames the next run may decode ahead while the current one is read (default 32 MiB; 0: only its
   * first frame). This is what lets two ffmpeg processes decode at once; runs are cut short enough that one
   * fits (`planRuns`' frameBytes). The current run never decodes ahead of the consumer.
   */
  readAheadBytes?: number;
}

export const DEFAULT_READ_AHEAD_BYTES = 32 << 20;

/** Terms in one run's `select` expression, well under what any ffmpeg parses (5.1 refuses more than 100). */
export const MAX_SELECT_TERMS = 32;

export interface Run {
  /** Frame to seek to (a keyframe); 0 means start at the beginning without seeking. */
  seekFrame: number;
  /** Chosen frames, ascending, unique. */
  frames: number[];
  /** Pass every frame through (no select): the run wants every frame, or the stream has no timestamps. */
  everyFrame: boolean;
  /** Every chosen frame is a keyframe, so the decoder skips all others. */
  keyframesOnly: boolean;
  /** Frames the decoder works through (from the seek point to the last chosen frame). */
  work: number;
}

/** Runs shorter than this decode on one thread: starting frame threads costs more than it saves. */
const SHORT_RUN_FRAMES = 64;

/** Index of the last keyframe at or before each frame. */
function keyframeBefore(index: FrameIndex): Int32Array {
  const out = new Int32Array(index.count);
  let k = 0;
  for (let i = 0; i < index.count; i++) {
    if (index.keyframe[i]) k = i;
    out[i] = k;
  }
  return out;
}

/** The keyframe nearest in time to each chosen frame (ties to the earlier one). */
export function nearestKeyframes(index: FrameIndex, frames: number[]): number[] {
  const keys: number[] = [];
  for (let i = 0; i < index.count; i++) if (index.keyframe[i]) keys.push(i);
  return frames.map((f) => {
    let lo = 0;
    let hi = keys.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (keys[mid] <= f) lo = mid;
      else hi = mid - 1;
    }
    const before = keys[lo];
    const after = keys[lo + 1];
    if (after === undefined || before === f) return before;
    const t = index.timesSec;
    return t[after] - t[f] < t[f] - t[before] ? after : before;
  });
}

/**
 * Splits the chosen frames (non-decreasing) into ffmpeg runs. A run whose frames are all keyframes
 * decodes only keyframes (`-skip_frame nokey`), so passing over the frames between them costs next to
 * nothing and such runs rarely need to seek; other runs decode everything from their seek point.
 */
export function planRuns(
  index: FrameIndex,
  chosen: number[],
  options: DecodePlanOptions = {},
  frameBytes = 0,
): Run[] {
  const { seekGainFrames = 16, readAheadBytes = DEFAULT_READ_AHEAD_BYTES } = options;
  // A run small enough to be decoded whole ahead of its turn (at least 16 frames, so starts stay rare).
  const fitsAhead =
    frameBytes > 0 && readAheadBytes > 0
      ? Math.max(16, Math.floor(readAheadBytes / frameBytes))
      : MAX_SELECT_TERMS;
  const maxFramesPerRun = Math.min(options.maxFramesPerRun ?? fitsAhead, MAX_SELECT_TERMS);
  const unique = [...new Set(chosen)].sort((a, b) => a - b);
  const whole = index.count;
  const single = (): Run[] => [
    { seekFrame: 0, frames: unique, everyFrame: true, keyframesOnly: false, work: whole },
  ];
  if (unique.length === index.available) return single();
  // Without timestamps frames are addressed by number from the start: one pass, every frame out.
  if (!index.hasTimestamps) return single();
  const before = keyframeBefore(index);
  // Frames the decoder works through to pass over frames 0..i−1: all of them, or only the keyframes.
  const all = new Float64Array(index.count + 1);
  const keys = new Float64Array(index.count + 1);
  for (let i = 0; i < index.count; i++) {
    all[i + 1] = all[i] + 1;
    keys[i + 1] = keys[i] + index.keyframe[i];
  }
  const runs: Run[] = [];
  let current: Run | undefined;
  for (const f of unique) {
    const key = before[f];
    const isKey = key === f;
    let fresh = !current || current.frames.length >= maxFramesPerRun || (current.keyframesOnly && !isKey);
    if (!fresh && current) {
      const last = current.frames[current.frames.length - 1];
      const work = current.keyframesOnly ? keys : all;
      fresh = key > last && work[key] - work[last + 1] >= seekGainFrames;
    }
    if (fresh) {
      current = { seekFrame: key, frames: [], everyFrame: false, keyframesOnly: isKey, work: 0 };
      runs.push(current);
    }
    current!.frames.push(f);
    const work = current!.keyframesOnly ? keys : all;
    current!.work = work[f + 1] - work[current!.seekFrame];
  }
  return runs;
}

/** pts window [lo, hi] that contains frame i and no other frame. */
function ptsWindow(index: FrameIndex, i: number): [number, number] {
  const p = index.pts;
  const gapBefore = i > 0 ? p[i] - p[i - 1] : i + 1 < index.count ? p[i + 1] - p[i] : 2e12;
  const gapAfter = i + 1 < index.count ? p[i + 1] - p[i] : gapBefore;
  // Timestamps are integers, so shaving a little off each half-gap keeps neighbours out.
  return [p[i] - gapBefore / 2 + 0.01, p[i] + gapAfter / 2 - 0.01];
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(3);
}

export interface RunContext {
  ffmpeg: string;
  path: string;
  label: string;
  info: MediaInfo;
  index: FrameIndex;
  size: Size;
  /** Give up when ffmpeg produces no output for this long while we wait on it. */
  stallTimeoutMs: number;
  signal?: AbortSignal;
  /** Decoder complaints from every run so far (capped), for the report of skipped frames. */
  problems: string[];
}

export function ffmpegArgs(ctx: RunContext, run: Run): string[] {
  const { info, index, size } = ctx;
  const args = ['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'info'];
  if (run.keyframesOnly) args.push('-skip_frame', 'nokey');
  if (run.work < SHORT_RUN_FRAMES) args.push('-threads', '1');
  if (run.seekFrame > 0) {
    // ffmpeg moves the seek point 3/23 s earlier for streams with B-frames in containers that index by
    // dts; aim that far past the keyframe (well short of the next: seek points are rounded to the time
    // base) so the demuxer lands on it.
    const key = run.seekFrame;
    let next = key + 1;
    while (next < index.count && !index.keyframe[next]) next++;
    const gap =
      next < index.count ? (index.pts[next] - index.pts[key]) * index.timeBase : Number.POSITIVE_INFINITY;
    const at = index.pts[key] * index.timeBase - info.startTimeSec + Math.min(3 / 23 + 0.0005, gap / 4);
    args.push('-ss', at.toFixed(6), '-noaccurate_seek');
  }
  args.push('-copyts', '-i', ctx.path, '-map', `0:${info.streamIndex}`);
  const filters: string[] = [];
  if (info.kind === 'video') {
    // End the stream at the frame after the run's last one, so ffmpeg flushes its frames and exits there.
    const end = run.frames[run.frames.length - 1] + 1;
    if (end < index.count)
      filters.push(index.hasTimestamps ? `trim=end_pts=${fmt(index.pts[end])}` : `trim=end_frame=${end}`);
    if (!run.everyFrame)
      filters.push(
        `select='${run.frames
          .map((f) => {
            const [lo, hi] = ptsWindow(index, f);
            return `between(pts,${fmt(lo)},${fmt(hi)})`;
          })
          .join('+')}'`,
      );
  }
  // showinfo reports each passing frame's pts (how we know which frame came out); checksums cost time.
  filters.push('showinfo=checksum=0', `scale=${size.width}:${size.height}:flags=bicubic`, 'format=rgb24');
  args.push('-vf', filters.join(','));
  if (info.kind === 'image') args.push('-frames:v', '1');
  args.push('-vsync', 'passthrough', '-an', '-sn', '-dn', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1');
  return args;
}

/** A decoded frame of one run, before it is fanned out to the samples that asked for it. */
export interface DecodedFrame {
  frame: number;
  data: Uint8Array;
}

/** Lines on ffmpeg's stderr: showinfo's per-frame pts, and decoder complaints worth reporting. */
class StderrReader {
  private buffer = '';
  private readonly ptsQueue: Array<number | null> = [];
  private waiter: (() => void) | undefined;
  ended = false;

  constructor(
    child: ChildProcess,
    private readonly problems: string[],
  ) {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      this.buffer += text;
      let nl = this.buffer.indexOf('\n');
      while (nl >= 0) {
        this.line(this.buffer.slice(0, nl).replace(/\r$/, ''));
        this.buffer = this.buffer.slice(nl + 1);
        nl = this.buffer.indexOf('\n');
      }
    });
    child.stderr!.once('close', () => {
      if (this.buffer) this.line(this.buffer);
      this.ended = true;
      this.wake();
    });
  }

  private wake() {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private line(line: string) {
    if (line.includes('Parsed_showinfo') && / n:\s*\d+/.test(line)) {
      const m = / pts:\s*(-?\d+)/.exec(line);
      this.ptsQueue.push(m ? Number(m[1]) : null);
      this.wake();
    } else if (/error|invalid|corrupt|missing|concealing/i.test(line) && this.problems.length < 20) {
      this.problems.push(line.replace(/^\[[^\]]*\]\s*/, '').trim());
    }
  }

  /** The pts of the next frame that passed the filters (null: no pts), or undefined at the end. */
  async nextPts(): Promise<number | null | undefined> {
    while (this.ptsQueue.length === 0 && !this.ended) await new Promise<void>((r) => (this.waiter = r));
    return this.ptsQueue.shift();
  }
}

/**
 * Runs one ffmpeg process and yields its chosen frames as they arrive. Frames it could not deliver are
 * simply absent; the caller reports them. Throws InputError when ffmpeg fails without any frame.
 */
export async function* decodeRun(ctx: RunContext, run: Run): AsyncGenerator<DecodedFrame> {
  const { size, index } = ctx;
  const frameBytes = size.width * size.height * 3;
  const child = spawnTool(ctx.ffmpeg, ffmpegArgs(ctx, run));
  const stderr = new StderrReader(child, ctx.problems);
  const problemsBefore = ctx.problems.length;
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const onAbort = () => child.kill('SIGKILL');
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  const pending = new Set(run.frames);
  let order = 0; // for streams without timestamps: frames come out in the order chosen
  let stalled = false;
  let delivered = 0;
  const stdout = child.stdout![Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let frame = new Uint8Array(frameBytes);
  let filled = 0;
  try {
    while (pending.size > 0) {
      const timer = setTimeout(() => {
        stalled = true;
        child.kill('SIGKILL');
      }, ctx.stallTimeoutMs);
      let next: IteratorResult<Buffer>;
      try {
        next = await stdout.next();
      } finally {
        clearTimeout(timer);
      }
      if (next.done) break;
      let chunk = next.value;
      while (chunk.length > 0) {
        const take = Math.min(chunk.length, frameBytes - filled);
        frame.set(chunk.subarray(0, take), filled);
        filled += take;
        chunk = chunk.subarray(take);
        if (filled < frameBytes) continue;
        const pts = await stderr.nextPts();
        const which = matchFrame(index, run, pts, order++);
        if (pending.delete(which)) {
          delivered++;
          yield { frame: which, data: frame };
        }
        frame = new Uint8Array(frameBytes);
        filled = 0;
        if (pending.size === 0) break;
      }
    }
    ctx.signal?.throwIfAborted();
    if (stalled)
      throw new InputError(
        `${ctx.label}: ffmpeg produced nothing for ${ctx.stallTimeoutMs / 1000} s while decoding; the file may be damaged`,
      );
    if (pending.size > 0) {
      const code = await exited;
      if (code !== 0 && code !== null && delivered === 0 && ctx.problems.length === problemsBefore)
        throw new InputError(`${ctx.label}: ffmpeg failed to decode (exit code ${code})`);
    }
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
    await stopTool(child);
  }
}

/**
 * A run whose ffmpeg has been started. While it waits for its turn it decodes up to `budget` bytes of frames
 * into a queue (so two processes decode at once); once current, its budget drops to nothing and it decodes
 * only as fast as it is read (backpressure).
 */
class StartedRun {
  private readonly queue: DecodedFrame[] = [];
  private queued = 0;
  private finished = false;
  private failure: unknown;
  private pulling: Promise<void> | undefined;
  private readonly frames: AsyncGenerator<DecodedFrame>;
  readonly stop = new AbortController();

  constructor(
    ctx: RunContext,
    run: Run,
    private budget: number,
  ) {
    const signal = ctx.signal ? AbortSignal.any([ctx.signal, this.stop.signal]) : this.stop.signal;
    this.frames = decodeRun({ ...ctx, signal }, run);
    this.fill();
  }

  /** Pulls one frame into the queue (one pull at a time). */
  private pull(): Promise<void> {
    this.pulling ??= this.frames.next().then(
      (r) => {
        this.pulling = undefined;
        if (r.done) this.finished = true;
        else {
          this.queue.push(r.value);
          this.queued += r.value.data.byteLength;
        }
      },
      (e) => {
        this.pulling = undefined;
        this.finished = true;
        this.failure = e;
      },
    );
    return this.pulling;
  }

  /** Decodes ahead while the queue is under budget (always the first frame: it covers the seek). */
  private async fill(): Promise<void> {
    while (!this.finished && (this.queue.length === 0 || this.queued < this.budget)) await this.pull();
  }

  /** Its frames in order, decoding no further ahead than the consumer. */
  async *take(): AsyncGenerator<DecodedFrame> {
    this.budget = 0;
    for (;;) {
      if (this.queue.length === 0) {
        if (this.finished) break;
        await this.pull();
        continue;
      }
      const f = this.queue.shift()!;
      this.queued -= f.data.byteLength;
      yield f;
    }
    if (this.failure) throw this.failure;
  }

  async drop(): Promise<void> {
    this.stop.abort();
    await this.pulling;
    await this.frames.return(undefined).catch(() => {});
  }
}

/**
 * Decodes the runs in order, yielding their frames and then `{ done: run }` after each. The next run's
 * ffmpeg starts while the current one is read and decodes up to `readAheadBytes` ahead, so seeks and
 * decoding overlap on a second core.
 */
export async function* decodeRuns(
  ctx: RunContext,
  runs: Run[],
  readAheadBytes = DEFAULT_READ_AHEAD_BYTES,
): AsyncGenerator<DecodedFrame | { done: Run }> {
  const started: StartedRun[] = [];
  try {
    for (let k = 0; k < runs.length; k++) {
      if (started.length === 0) started.push(new StartedRun(ctx, runs[k], 0));
      if (k + 1 < runs.length) started.push(new StartedRun(ctx, runs[k + 1], readAheadBytes));
      yield* started[0].take();
      started.shift();
      yield { done: runs[k] };
    }
  } finally {
    await Promise.all(started.map((r) => r.drop()));
  }
}

/**
 * Which frame an output frame is: the one nearest its pts, or by order when there are no timestamps (a
 * run without timestamps passes every frame from the first).
 */
function matchFrame(index: FrameIndex, run: Run, pts: number | null | undefined, order: number): number {
  if (pts === null || pts === undefined || !index.hasTimestamps)
    return run.everyFrame ? run.seekFrame + order : run.frames[order];
  let lo = 0;
  let hi = index.count - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (index.pts[mid] <= pts) lo = mid;
    else hi = mid - 1;
  }
  const after = Math.min(lo + 1, index.count - 1);
  return Math.abs(index.pts[after] - pts) < Math.abs(index.pts[lo] - pts) ? after : lo;
}

/** What the problems ffmpeg reported say, for messages about frames it did not deliver. */
export function describeProblems(problems: string[]): string {
  return problems.length ? `ffmpeg: ${problems.slice(0, 3).join('; ')}` : 'ffmpeg returned no picture for it';
}
