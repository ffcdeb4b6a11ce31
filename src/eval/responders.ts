/**
 * The two ways a benchmark item is answered: in process through the public VideoLM API, or by any
 * OpenAI-compatible server (longshot serve, vLLM, …) with a `video_url` part, or with N decoded frames as
 * `image_url` parts for servers that take no video.
 */
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { InputError } from '../errors.js';
import type { VideoHandle } from '../facade/engine.js';
import type { VideoLM } from '../facade/video-lm.js';
import { type Clip, encodePng, openVideo } from '../media/index.js';
import type { BenchItem } from './benchmark.js';
import type { ItemRequest, Responder } from './run.js';

/** Greedy answers from a loaded model; consecutive items on one video (VNBench's tries) reuse its encoding. */
export function inProcess(model: VideoLM): Responder & Disposable {
  let last: { key: string; handle: VideoHandle } | undefined;
  const release = () => {
    last?.handle.dispose();
    last = undefined;
  };
  return {
    async answer(item, request) {
      const key = JSON.stringify([item.video, request.sampling, item.clip]);
      if (last?.key !== key) {
        release();
        last = { key, handle: await model.encodeVideo(item.video, { ...request.sampling, clip: item.clip }) };
      }
      const r = await model
        .ask(last.handle, request.text, { maxNewTokens: request.maxNewTokens, temperature: 0 })
        .result();
      return r.text;
    },
    [Symbol.dispose]: release,
  };
}

export interface EndpointOptions {
  /** The server's base URL (`http://host:8000` or `…/v1`). */
  url: string;
  /** The model id to send (default: the first of GET /v1/models). */
  model?: string;
  apiKey?: string;
  /** Send N uniformly sampled frames as image_url parts instead of the video. */
  frames?: number;
  /** How the video is named: a file:// URL (the server reads it) or its bytes as a data: URL. */
  video?: 'file' | 'data';
  fetch?: typeof fetch;
}

const base = (url: string) => url.replace(/\/+$/, '').replace(/\/v1$/, '');

/** N uniformly sampled frames of a video (of its clip, when given) as PNG data: URLs. */
export async function frameUrls(video: string, n: number, clip?: Clip): Promise<string[]> {
  await using v = await openVideo(video);
  const sample = await v.sample({ kind: 'uniform', numFrames: n }, clip);
  const urls: string[] = [];
  for await (const batch of v.frames(sample))
    for (const f of batch)
      urls.push(`data:image/png;base64,${encodePng(f.width, f.height, f.data).toString('base64')}`);
  return urls;
}

async function videoPart(item: BenchItem, o: EndpointOptions) {
  if (o.video !== 'data') return [{ type: 'video_url', video_url: { url: pathToFileURL(item.video).href } }];
  const bytes = await readFile(item.video);
  return [{ type: 'video_url', video_url: { url: `data:video/mp4;base64,${bytes.toString('base64')}` } }];
}

/** The Chat Completions body for one item (sampling fields are longshot's extensions, sent only when set). */
export async function chatBody(item: BenchItem, request: ItemRequest, model: string, o: EndpointOptions) {
  const media = o.frames
    ? (await frameUrls(item.video, o.frames, item.clip)).map((url) => ({
        type: 'image_url',
        image_url: { url },
      }))
    : await videoPart(item, o);
  const s = request.sampling;
  return {
    model,
    messages: [{ role: 'user', content: [...media, { type: 'text', text: request.text }] }],
    max_tokens: request.maxNewTokens,
    temperature: 0,
    ...(s.frames !== undefined && { frames: s.frames }),
    ...(s.fps !== undefined && { fps: s.fps }),
    ...(s.sampling !== undefined && { sampling: s.sampling }),
    ...(s.maxEdge !== undefined && { max_edge: s.maxEdge }),
    ...(s.minEdge !== undefined && { min_edge: s.minEdge }),
    ...(item.clip && { clip_start: item.clip.startSec, clip_end: item.clip.endSec }),
  };
}

export function endpoint(o: EndpointOptions): Responder {
  const f = o.fetch ?? fetch;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (o.apiKey) headers.authorization = `Bearer ${o.apiKey}`;
  let model = o.model;
  const call = async (path: string, init?: RequestInit) => {
    const res = await f(`${base(o.url)}${path}`, { ...init, headers }).catch((e: Error) => {
      throw new InputError(`--endpoint ${o.url}: cannot connect (${e.message}); is the server running?`);
    });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      const msg = (body.error as { message?: string } | undefined)?.message ?? res.statusText;
      throw new InputError(`--endpoint ${o.url}${path}: HTTP ${res.status}: ${msg}`);
    }
    return body;
  };
  return {
    async answer(item, request) {
      model ??= ((await call('/v1/models')).data as { id: string }[] | undefined)?.[0]?.id;
      if (!model)
        throw new InputError(`--endpoint ${o.url}: /v1/models lists no model; pass --endpoint-model`);
      const body = await call('/v1/chat/completions', {
        method: 'POST',
        body: JSON.stringify(await chatBody(item, request, model, o)),
      });
      const text = (body.choices as { message?: { content?: string } }[] | undefined)?.[0]?.message?.content;
      if (typeof text !== 'string')
        throw new InputError(`--endpoint ${o.url}: the reply has no choices[0].message.content`);
      return text;
    },
  };
}
