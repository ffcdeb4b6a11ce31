/** The server's routes as the page uses them (docs/server.md): JSON calls and server-sent event streams. */

export interface Info {
  model: string;
  architecture: string;
  device: string;
  parameters: number;
  memory: Record<string, number>;
  library: boolean;
  upload_max_bytes: number;
  live: boolean;
}

export interface Relevance {
  timestamps_sec: number[];
  scores: number[];
}

export interface Encoded {
  tokens: number;
  bytes: number;
  frames: number;
  timestamps_sec: number[];
  cached: boolean;
  seconds: number;
}

export interface Progress {
  done: number;
  total: number;
  /** Video tokens encoded so far (null where the model does not report them). */
  tokens?: number | null;
  elapsed_s?: number;
  eta_s?: number | null;
}

export interface Turn {
  role: 'user' | 'assistant';
  content: string;
}

/** A failed call's message, as the server's `{error: {message}}` body gives it. */
export class ServerError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let apiKey = sessionStorage.getItem('longshot-key') ?? '';

/** Remembers the key for this tab (asked for when the server answers 401). */
export function setKey(key: string): void {
  apiKey = key;
  sessionStorage.setItem('longshot-key', key);
}

const auth = (): Record<string, string> => (apiKey ? { authorization: `Bearer ${apiKey}` } : {});

async function failure(r: Response): Promise<ServerError> {
  const body = await r.json().catch(() => null);
  return new ServerError(r.status, body?.error?.message ?? `${r.status} ${r.statusText}`);
}

async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const r = await fetch(path, { ...init, headers: { ...auth(), ...(init.headers ?? {}) } });
  if (!r.ok) throw await failure(r);
  return r.json() as Promise<T>;
}

export const info = () => call<Info>('/ui/api/info');
export const videos = () => call<{ data: { path: string; bytes: number }[] }>('/ui/api/videos');

export const mediaUrl = (url: string) =>
  `/ui/media?url=${encodeURIComponent(url)}${apiKey ? `&key=${encodeURIComponent(apiKey)}` : ''}`;

export function upload(file: File): Promise<{ url: string; name: string; bytes: number }> {
  return call('/ui/api/uploads', {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'x-filename': encodeURIComponent(file.name) },
    body: file,
  });
}

/** Server-sent events of a POST: each `event:` name (default 'message') with its parsed `data:`. */
async function* events(path: string, body: unknown): AsyncGenerator<{ event: string; data: string }> {
  const r = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth() },
    body: JSON.stringify(body),
  });
  if (!r.ok || !r.body) throw await failure(r);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut = buffer.indexOf('\n\n');
    while (cut >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      yield { event, data: data.join('\n') };
      cut = buffer.indexOf('\n\n');
    }
  }
}

/** Encodes the video (or finds it cached), reporting progress; resolves with what the model holds. */
export async function encode(url: string, onProgress: (p: Progress) => void): Promise<Encoded> {
  for await (const e of events('/ui/api/encode', { url })) {
    const data = JSON.parse(e.data);
    if (e.event === 'progress') onProgress(data);
    else if (e.event === 'done') return data;
    else if (e.event === 'error') throw new ServerError(400, data.error.message);
  }
  throw new ServerError(500, 'the encoding stream ended early');
}

/**
 * Asks about the video with the conversation so far (the first user turn carries the video), streaming the
 * answer's pieces; resolves with the relevance per frame the server returns with `relevance: true`.
 */
export async function ask(
  model: string,
  video: string,
  turns: Turn[],
  onPiece: (text: string) => void,
): Promise<Relevance | null> {
  const first = turns.findIndex((t) => t.role === 'user');
  const messages = turns.map((t, i) =>
    i === first
      ? {
          role: t.role,
          content: [
            { type: 'video_url', video_url: { url: video } },
            { type: 'text', text: t.content },
          ],
        }
      : t,
  );
  let relevance: Relevance | null = null;
  for await (const e of events('/v1/chat/completions', { model, messages, stream: true, relevance: true })) {
    if (e.data === '[DONE]') break;
    const chunk = JSON.parse(e.data);
    if (chunk.error) throw new ServerError(400, chunk.error.message);
    const piece = chunk.choices?.[0]?.delta?.content;
    if (piece) onPiece(piece);
    if (chunk.relevance) relevance = chunk.relevance;
  }
  return relevance;
}

/** A live session's status (GET /v1/live/sessions/{id}, docs/server.md). */
export interface LiveStatus {
  id: string;
  state: 'starting' | 'running' | 'ended' | 'failed';
  error: string | null;
  fps: number;
  frames_seen: number;
  frames_encoded: number;
  duration_sec: number;
  video_tokens: number;
  memory_bytes: number;
}

const json = (body: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

/** Starts watching a source (a growing file under the media root, or a stream URL the server allows). */
export const watch = (source: string, fps: number) =>
  call<LiveStatus>('/v1/live/sessions', json({ source, fps }));
export const liveStatus = (id: string) => call<LiveStatus>(`/v1/live/sessions/${encodeURIComponent(id)}`);
export const closeLive = (id: string) =>
  call<unknown>(`/v1/live/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });

/** An RGB24 image and its stream time. */
export interface RgbFrame {
  width: number;
  height: number;
  timeSec: number;
  rgb: Uint8Array;
}

/** Small copies of a live session's frames taken after stream second `after` (the last few hundred). */
export async function liveThumbs(id: string, after: number | null): Promise<RgbFrame[]> {
  const query = after === null ? '' : `?after=${after}`;
  const { data } = await call<{
    data: { time_sec: number; width: number; height: number; rgb: string }[];
  }>(`/ui/api/live/${encodeURIComponent(id)}/thumbs${query}`);
  return data.map((f) => ({
    width: f.width,
    height: f.height,
    timeSec: f.time_sec,
    rgb: Uint8Array.from(atob(f.rgb), (c) => c.charCodeAt(0)),
  }));
}

/** A live session's newest frame: RGB24 rows at its source size and its stream time; null before any. */
export async function liveFrame(id: string): Promise<RgbFrame | null> {
  const r = await fetch(`/ui/api/live/${encodeURIComponent(id)}/frame`, { headers: auth() });
  if (!r.ok) throw await failure(r);
  if (r.status === 204) return null;
  const num = (h: string) => Number(r.headers.get(h));
  return {
    width: num('x-frame-width'),
    height: num('x-frame-height'),
    timeSec: num('x-frame-time'),
    rgb: new Uint8Array(await r.arrayBuffer()),
  };
}
