/**
 * Live video sessions of the server: each watches one source (media/live-source.ts) in the background,
 * appending its frames to a growing video (facade/live.ts), and answers Chat Completions that name it
 * (`"video_url": {"url": "live://<id>"}`) about what it has seen so far. A session is closed by its client,
 * or when nobody has asked about it or polled it for `idleTtlMs`; at most `maxSessions` run at once.
 */
import { randomUUID } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import type { ChatEngine, VideoHandle } from '../../facade/engine.js';
import type { LiveVideo } from '../../facade/live.js';
import { resizeBicubic } from '../../media/bicubic.js';
import { liveFrames, sourceKind, type TimedFrame } from '../../media/live-source.js';
import { ApiError, badRequest, toApiError } from '../errors.js';
import { inside, type MediaPolicy } from '../media.js';

export interface LiveSessionOptions {
  /** Sessions at once (default 2); creating another is a 429. */
  maxSessions?: number;
  /** A session nobody has used for this long is closed (default 10 min). */
  idleTtlMs?: number;
  /** How long creating a session waits for its first frame before answering (default 5 s). */
  startWaitMs?: number;
}

export interface CreateLiveSession {
  source: string;
  fps?: number;
  windowSec?: number;
  maxEdge?: number;
  minEdge?: number;
  /** Read a finished file at its own pace (ffmpeg -re). */
  realtime?: boolean;
  /** The source ends after this long without new data (default 10 s). */
  idleTimeoutSec?: number;
}

export type SessionState = 'starting' | 'running' | 'ended' | 'failed';

/** Small copies of the frames taken, for the web UI's strip: at most this many, THUMB_HEIGHT pixels high. */
const THUMBS = 300;
const THUMB_HEIGHT = 90;

function thumbnail(f: TimedFrame): TimedFrame {
  const height = Math.min(THUMB_HEIGHT, f.height);
  const width = Math.max(1, Math.round((f.width * height) / f.height));
  if (height === f.height) return f;
  return { ...f, width, height, data: resizeBicubic(f.data, f.width, f.height, width, height) };
}

export class LiveSession {
  state: SessionState = 'starting';
  error: string | null = null;
  readonly created = Math.floor(Date.now() / 1000);
  lastUsed = Date.now();
  readonly ctrl = new AbortController();
  /** Settles when the source has ended, failed or been stopped. */
  pump: Promise<void> = Promise.resolve();
  /** The newest frame taken, as the source gave it (the web UI shows it). */
  latest: TimedFrame | null = null;
  /** Thumbnails of the last THUMBS frames taken, oldest first. */
  readonly thumbs: TimedFrame[] = [];

  /** Notes the frames the source gave, before they are encoded. */
  took(frames: readonly TimedFrame[]): void {
    if (!frames.length) return;
    this.latest = frames[frames.length - 1];
    this.thumbs.push(...frames.map(thumbnail));
    this.thumbs.splice(0, Math.max(0, this.thumbs.length - THUMBS));
  }

  constructor(
    readonly id: string,
    /** The source as the client named it. */
    readonly source: string,
    readonly video: LiveVideo,
    readonly fps: number,
  ) {}
}

const notFound = (id: string, param: string | null = null) =>
  new ApiError(
    404,
    `no live session '${id}' (it was closed or expired; create one with POST /v1/live/sessions)`,
    'invalid_request_error',
    param,
    'live_session_not_found',
  );

export class LiveSessions {
  readonly #sessions = new Map<string, LiveSession>();
  readonly #max: number;
  readonly #ttl: number;
  readonly #startWait: number;
  readonly #sweep: NodeJS.Timeout;

  constructor(
    private readonly engine: ChatEngine,
    private readonly policy: MediaPolicy,
    opts: LiveSessionOptions = {},
  ) {
    this.#max = opts.maxSessions ?? 2;
    this.#ttl = opts.idleTtlMs ?? 600_000;
    this.#startWait = opts.startWaitMs ?? 5000;
    this.#sweep = setInterval(() => this.expire(), Math.min(30_000, Math.max(50, this.#ttl / 4)));
    this.#sweep.unref();
  }

  get size(): number {
    return this.#sessions.size;
  }

  get idleTtlMs(): number {
    return this.#ttl;
  }

  /** Whether sessions can be opened here (the model can grow a video, and the limit is not 0). */
  get enabled(): boolean {
    return this.#max > 0 && this.engine.live !== undefined && this.engine.canWatch !== false;
  }

  list(): LiveSession[] {
    return [...this.#sessions.values()];
  }

  /** Starts watching a source; resolves once the first frame arrived (or after startWaitMs), or rejects. */
  async create(req: CreateLiveSession): Promise<LiveSession> {
    if (!this.engine.live)
      throw badRequest('this server cannot watch live video (its engine has no live videos)', 'source');
    if (!this.#max)
      throw new ApiError(
        403,
        'live sessions are disabled on this server (it was started with --max-live-sessions 0)',
        'invalid_request_error',
        null,
        'live_sessions_disabled',
      );
    if (this.#sessions.size >= this.#max)
      throw new ApiError(
        429,
        `too many live sessions: ${this.#max} are open; close one (DELETE /v1/live/sessions/<id>) or wait for one to expire`,
        'rate_limit_exceeded',
        null,
        'too_many_live_sessions',
        Math.ceil(this.#ttl / 1000),
      );
    const path = await this.#resolveSource(req.source);
    const video = (() => {
      try {
        return this.engine.live({
          fps: req.fps,
          windowSec: req.windowSec,
          maxEdge: req.maxEdge,
          minEdge: req.minEdge,
          label: req.source,
        });
      } catch (e) {
        throw toApiError(e, {
          param: e instanceof UsageError && e.field === 'window' ? 'window_sec' : 'source',
        });
      }
    })();
    const s = new LiveSession(`live-${randomUUID()}`, req.source, video, video.sampling.fps);
    this.#sessions.set(s.id, s);
    let first: () => void = () => {};
    const started = new Promise<void>((r) => {
      first = r;
    });
    s.pump = (async () => {
      try {
        for await (const batch of liveFrames(path, {
          fps: s.fps,
          realtime: req.realtime,
          idleTimeoutSec: req.idleTimeoutSec,
          signal: s.ctrl.signal,
        })) {
          s.took(batch);
          await video.append(batch, { signal: s.ctrl.signal });
          if (s.state === 'starting') s.state = 'running';
          first();
        }
        s.state = 'ended';
      } catch (e) {
        if (!s.ctrl.signal.aborted) {
          s.state = 'failed';
          s.error = toApiError(e, { param: 'source', redact: (t) => t.split(path).join(req.source) }).message;
        }
      } finally {
        first();
      }
    })();
    const timer = new Promise<void>((r) => setTimeout(r, this.#startWait).unref());
    await Promise.race([started, timer]);
    if (s.state === 'failed') {
      await this.close(s.id);
      throw badRequest(s.error!, 'source', 'invalid_media');
    }
    return s;
  }

  /** The session, marked as used now; a 404 when there is none. */
  get(id: string, param: string | null = null): LiveSession {
    const s = this.#sessions.get(id);
    if (!s) throw notFound(id, param);
    s.lastUsed = Date.now();
    return s;
  }

  /** A snapshot of a session's video for one question (released after it). */
  snapshot(id: string, param: string): VideoHandle {
    const s = this.get(id, param);
    try {
      return s.video.snapshot();
    } catch (e) {
      throw toApiError(e, { param });
    }
  }

  async close(id: string): Promise<void> {
    const s = this.#sessions.get(id);
    if (!s) throw notFound(id);
    this.#sessions.delete(id);
    s.ctrl.abort();
    await s.pump;
    await s.video.close();
  }

  /** Closes the sessions idle past the TTL. */
  expire(now = Date.now()): void {
    for (const s of this.#sessions.values()) if (now - s.lastUsed >= this.#ttl) void this.close(s.id);
  }

  async closeAll(): Promise<void> {
    clearInterval(this.#sweep);
    await Promise.all([...this.#sessions.keys()].map((id) => this.close(id)));
  }

  /** A file under the media root, or a stream URL when remote media is allowed; never a device or stdin. */
  async #resolveSource(source: string): Promise<string> {
    const forbidden = (why: string) =>
      new ApiError(403, `source: ${why}`, 'invalid_request_error', 'source', 'media_not_allowed');
    let kind: ReturnType<typeof sourceKind>;
    try {
      kind = sourceKind(source);
    } catch (e) {
      throw toApiError(e, { param: 'source' });
    }
    if (kind === 'pipe' || kind === 'device')
      throw forbidden('the server watches files under its media root and stream URLs, not devices or pipes');
    if (kind === 'url') {
      if (!this.policy.allowRemote)
        throw forbidden('stream URLs are disabled on this server (start it with --allow-remote-media)');
      return source;
    }
    if (!this.policy.allowedRoot)
      throw forbidden('local files are disabled on this server (start it with --allowed-root <dir>)');
    const root = await realpath(this.policy.allowedRoot);
    const lexical = resolve(root, source);
    if (!inside(root, lexical)) throw forbidden('the path is outside the server’s media root');
    const real = await realpath(lexical).catch(() => {
      throw badRequest(
        `source: no such file under the media root: ${relative(root, lexical)}`,
        'source',
        'invalid_media',
      );
    });
    if (!inside(root, real) || !isAbsolute(real))
      throw forbidden('the path leads outside the server’s media root');
    return real;
  }
}
