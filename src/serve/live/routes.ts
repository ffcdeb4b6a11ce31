/**
 * The live session endpoints (docs/server.md):
 *   POST   /v1/live/sessions        {source, fps, window_sec, max_edge, min_edge, realtime, idle_timeout_sec}
 *   GET    /v1/live/sessions        every session's status
 *   GET    /v1/live/sessions/:id    frames seen and held, duration, tokens, memory, state
 *   DELETE /v1/live/sessions/:id
 * and the hook that lets Chat Completions name a session as its video: `"video_url": {"url": "live://<id>"}`.
 */
import type { FastifyInstance } from 'fastify';
import type { ChatEngine } from '../../facade/engine.js';
import { badRequest } from '../errors.js';
import type { MediaPolicy } from '../media.js';
import type { MediaRef } from '../request.js';
import type { Lease } from '../video-cache.js';
import {
  type CreateLiveSession,
  type LiveSession,
  type LiveSessionOptions,
  LiveSessions,
} from './sessions.js';

const LIVE_URL = /^live:\/\/(.+)$/;

/** Registers the routes; returns the sessions and the lease hook for a chat request's media part. */
export function registerLiveSessions(
  app: FastifyInstance,
  engine: ChatEngine,
  policy: MediaPolicy,
  opts: LiveSessionOptions = {},
): { sessions: LiveSessions; lease(ref: MediaRef): Lease | null } {
  const sessions = new LiveSessions(engine, policy, opts);
  app.post('/v1/live/sessions', async (req, reply) => {
    const s = await sessions.create(parseCreate(req.body));
    return reply.status(201).send(statusOf(s, sessions.idleTtlMs));
  });
  app.get('/v1/live/sessions', async () => ({
    object: 'list',
    data: sessions.list().map((s) => statusOf(s, sessions.idleTtlMs)),
  }));
  app.get<{ Params: { id: string } }>('/v1/live/sessions/:id', async (req) =>
    statusOf(sessions.get(req.params.id), sessions.idleTtlMs),
  );
  app.delete<{ Params: { id: string } }>('/v1/live/sessions/:id', async (req) => {
    await sessions.close(req.params.id);
    return { id: req.params.id, object: 'live_session.deleted', deleted: true };
  });
  app.addHook('onClose', () => sessions.closeAll());
  return {
    sessions,
    lease(ref) {
      const m = LIVE_URL.exec(ref.url);
      if (!m) return null;
      if (ref.kind !== 'video')
        throw badRequest(`${ref.param}: a live session is a video: send it as a video_url part`, ref.param);
      const handle = sessions.snapshot(m[1], ref.param);
      return { handle, hit: true, release: () => handle.dispose() };
    },
  };
}

function statusOf(s: LiveSession, ttlMs: number) {
  const v = s.video.status();
  return {
    id: s.id,
    object: 'live_session',
    source: s.source,
    state: s.state,
    error: s.error,
    created: s.created,
    fps: s.fps,
    window_sec: v.windowSec,
    frames_seen: v.framesSeen,
    frames_held: v.framesHeld,
    frames_encoded: v.framesEncoded,
    duration_sec: v.durationSec,
    held_sec: v.heldSec,
    last_frame_at: v.lastFrameAt === null ? null : v.lastFrameAt / 1000,
    video_tokens: v.tokens,
    memory_bytes: v.bytes,
    expires_at: Math.floor((s.lastUsed + ttlMs) / 1000),
  };
}

type Json = Record<string, unknown>;

function parseCreate(body: unknown): CreateLiveSession {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw badRequest('the request body must be a JSON object with a "source"');
  const b = body as Json;
  if (typeof b.source !== 'string' || !b.source)
    throw badRequest('source: expected a file path under the media root or a stream URL', 'source');
  const num = (key: string, what: string, ok: (v: number) => boolean): number | undefined => {
    const v = b[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v))
      throw badRequest(`${key}: expected ${what}, got ${JSON.stringify(v)}`, key);
    return v;
  };
  if (b.realtime !== undefined && typeof b.realtime !== 'boolean')
    throw badRequest(`realtime: expected a boolean, got ${JSON.stringify(b.realtime)}`, 'realtime');
  return {
    source: b.source,
    fps: num('fps', 'a number > 0', (v) => v > 0),
    windowSec: num('window_sec', 'a number of seconds > 0', (v) => v > 0),
    maxEdge: num('max_edge', 'a positive integer', (v) => Number.isInteger(v) && v >= 1),
    minEdge: num('min_edge', 'a positive integer', (v) => Number.isInteger(v) && v >= 1),
    realtime: b.realtime as boolean | undefined,
    idleTimeoutSec: num('idle_timeout_sec', 'a number of seconds > 0', (v) => v > 0),
  };
}
