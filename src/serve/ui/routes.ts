/**
 * The web UI (docs/server.md, "Web UI"): the page at `/`, its assets, and the few JSON routes it needs
 * besides /v1/chat/completions (which it calls like any client, with `relevance: true`):
 *   GET  /ui/api/info      the model, its memory and the server's limits
 *   GET  /ui/api/videos    videos under the media root
 *   POST /ui/api/uploads   a video as the raw body (x-filename header) → an `upload:<id>` URL
 *   POST /ui/api/encode    {url}: encodes (or finds cached) the video, streaming progress as server-sent events
 *   GET  /ui/media?url=…   the video's bytes, with range requests, for the player
 *   GET  /ui/api/live/:id/frame   a live session's newest frame (raw RGB), for the page's live view
 *   GET  /ui/api/live/:id/thumbs?after=s   small copies of the frames taken after stream second s
 * A live session (serve/live/, created through /v1/live/sessions) is the page's third source; `live` in
 * /ui/api/info says whether the page offers it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ChatEngine, VideoHandle } from '../../facade/engine.js';
import type { VideoProgress } from '../../facade/types.js';
import { decodeReportJson } from '../../media/index.js';
import { getBackend } from '../../runtime/device.js';
import { packageRoot } from '../../util/package-root.js';
import { ApiError, badRequest, toApiError } from '../errors.js';
import type { LiveSessions } from '../live/sessions.js';
import { localMediaPath, type MediaPolicy } from '../media.js';
import type { RequestQueue } from '../queue.js';
import type { MediaRef } from '../request.js';
import type { Lease, VideoCache } from '../video-cache.js';
import { listVideos } from './library.js';
import { contentType, sendFile } from './send-file.js';
import type { UploadStore } from './uploads.js';

export interface UiContext {
  engine: ChatEngine;
  modelId: string;
  policy: MediaPolicy;
  queue: RequestQueue;
  cache: VideoCache;
  uploads: UploadStore;
  live: LiveSessions;
  timeoutMs: number;
  /**
   * The server's own path to an encoded video (the cache, keyed as chat requests key it), admitted by the
   * queue for its encode; the lease's release ends the admission.
   */
  leaseVideo(ref: MediaRef, signal: AbortSignal, progress: VideoProgress): Promise<Lease>;
}

/** Where the page's files are: HTML and CSS as written, the scripts as `npm run build` compiled them. */
const WEB = join(packageRoot(), 'web');
const WEB_JS = join(packageRoot(), 'dist', 'web');
const ASSET = /^[a-z][a-z0-9-]*\.(js|css)$/;

export async function uiRoutes(app: FastifyInstance, ui: UiContext): Promise<void> {
  app.get('/', async (_req, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send(await readFile(join(WEB, 'index.html'))),
  );

  app.get<{ Params: { file: string } }>('/ui/assets/:file', async (req, reply) => {
    const { file } = req.params;
    if (!ASSET.test(file))
      throw new ApiError(404, `no UI asset ${file}`, 'invalid_request_error', null, 'not_found');
    const path = join(file.endsWith('.js') ? WEB_JS : WEB, file);
    const body = await readFile(path).catch(() => {
      throw new ApiError(
        404,
        file.endsWith('.js')
          ? `the web UI's scripts are not built (${file}): run "npm run build"`
          : `no UI asset ${file}`,
        'invalid_request_error',
        null,
        'not_found',
      );
    });
    return reply.header('content-type', contentType(path)).header('cache-control', 'no-cache').send(body);
  });

  app.get('/ui/api/info', async () => {
    const info = ui.engine.info;
    const device = await getBackend(info.device);
    const mem = device.memory();
    return {
      model: ui.modelId,
      architecture: info.architecture,
      device: info.device,
      parameters: info.parameters,
      memory: {
        weights_bytes: info.weightBytes,
        device_bytes: mem.current,
        device_peak_bytes: mem.peak,
        device_reserved_bytes: mem.reserved,
        video_cache_bytes: ui.cache.bytes,
        video_cache_entries: ui.cache.size,
        ledger: ui.queue.ledger.snapshot,
        process_rss_bytes: process.memoryUsage().rss,
      },
      queue: ui.queue.stats,
      library: ui.policy.allowedRoot !== undefined,
      upload_max_bytes: ui.uploads.maxBytes,
      live: ui.live.enabled,
    };
  });

  // The newest frame as the source gave it: RGB24 rows, its size and stream time in headers (no image
  // encoder needed; the page draws it on a canvas). 204 before the first frame.
  app.get<{ Params: { id: string } }>('/ui/api/live/:id/frame', async (req, reply) => {
    const frame = ui.live.get(req.params.id).latest;
    if (!frame) return reply.status(204).send();
    return reply
      .header('content-type', 'application/octet-stream')
      .header('cache-control', 'no-store')
      .header('x-frame-width', frame.width)
      .header('x-frame-height', frame.height)
      .header('x-frame-time', frame.timestampSec)
      .send(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength));
  });

  app.get<{ Params: { id: string }; Querystring: { after?: string } }>(
    '/ui/api/live/:id/thumbs',
    async (req) => {
      const after = req.query.after === undefined ? Number.NEGATIVE_INFINITY : Number(req.query.after);
      if (Number.isNaN(after)) throw badRequest('after: expected a number of seconds', 'after');
      const thumbs = ui.live.get(req.params.id).thumbs.filter((f) => f.timestampSec > after);
      return {
        data: thumbs.map((f) => ({
          time_sec: f.timestampSec,
          width: f.width,
          height: f.height,
          rgb: Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength).toString('base64'),
        })),
      };
    },
  );

  app.get('/ui/api/videos', async () => {
    if (!ui.policy.allowedRoot)
      throw new ApiError(
        403,
        'this server has no media root (start it with --allowed-root <dir>); upload a video instead',
        'invalid_request_error',
        null,
        'media_not_allowed',
      );
    return { data: await listVideos(ui.policy.allowedRoot) };
  });

  app.get<{ Querystring: { url?: string } }>('/ui/media', async (req, reply) => {
    const url = req.query.url;
    if (!url)
      throw badRequest('url: give the video as ?url=<path under the media root or upload:<id>>', 'url');
    const { path } = await localMediaPath({ kind: 'video', url, param: 'url' }, ui.policy);
    return sendFile(req, reply, path);
  });

  // The raw body streams to disk (UploadStore enforces the size limit): scoped to these routes, this parser
  // hands over the request stream unread.
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
  app.post('/ui/api/uploads', async (req, reply) => {
    let name: string;
    try {
      name = decodeURIComponent(String(req.headers['x-filename'] ?? 'upload'));
    } catch {
      throw badRequest('x-filename: expected the file name, URI-encoded', 'x-filename');
    }
    const length = req.headers['content-length'];
    const upload = await ui.uploads.save(req.body as Readable, name, length ? Number(length) : undefined);
    return reply.status(201).send(upload);
  });

  app.post('/ui/api/encode', async (req, reply) => {
    const body = req.body as { url?: unknown } | null;
    if (typeof body?.url !== 'string' || !body.url)
      throw badRequest('url: expected a path under the media root or an upload:<id> URL', 'url');
    const ref: MediaRef = { kind: 'video', url: body.url, param: 'url' };
    const ctrl = new AbortController();
    const timer = setTimeout(
      () => ctrl.abort(new ApiError(504, 'encoding took too long', 'timeout')),
      ui.timeoutMs,
    );
    reply.raw.on('close', () => ctrl.abort(new ApiError(499, 'the client closed the connection')));
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    const send = (event: string, data: unknown) =>
      raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    const t0 = performance.now();
    let total = 0;
    const progress: VideoProgress = {
      start(frames) {
        total = frames;
        send('progress', { done: 0, total });
      },
      frames(done, tokens) {
        const elapsed = (performance.now() - t0) / 1000;
        send('progress', {
          done,
          total,
          tokens: tokens ?? null,
          elapsed_s: elapsed,
          eta_s: done ? (elapsed * (total - done)) / done : null,
        });
      },
    };
    try {
      const lease = await ui.leaseVideo(ref, ctrl.signal, progress);
      send('done', {
        ...describe(lease.handle),
        cached: lease.hit,
        seconds: (performance.now() - t0) / 1000,
      });
      lease.release();
    } catch (e) {
      send('error', toApiError(ctrl.signal.aborted ? ctrl.signal.reason : e, { param: 'url' }).body);
    } finally {
      clearTimeout(timer);
      raw.end();
    }
  });
}

function describe(h: VideoHandle) {
  return {
    tokens: h.tokens,
    bytes: h.bytes,
    frames: h.timestampsSec.length,
    timestamps_sec: h.timestampsSec,
    video: decodeReportJson(h.decode),
  };
}
