/**
 * Turns whatever the user gave us (a path, an http(s) URL, a `data:` URL, bytes) into a local file that
 * ffmpeg can seek in. URLs are streamed to a temporary file (never held in memory) with an inactivity
 * timeout and a size limit; bytes and data URLs are written to a temporary file too.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.js';

/** A video or image: a local path, an http(s)/file/data URL (string or URL), or the file's bytes. */
export type MediaInput = string | URL | Uint8Array;

export interface FetchOptions {
  /** Give up when a URL sends nothing for this long, headers included (default 30 s). */
  timeoutMs?: number;
  /** Refuse URLs and data larger than this (default 16 GiB). */
  maxBytes?: number;
  signal?: AbortSignal;
}

/** A local file for ffmpeg; `release()` deletes it when it was a temporary copy. */
export interface LocalMedia {
  path: string;
  /** How to name the input in messages (the path or URL, never the bytes). */
  label: string;
  sizeBytes: number;
  release(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BYTES = 16 * 2 ** 30;

export async function openInput(input: MediaInput, options: FetchOptions = {}): Promise<LocalMedia> {
  options.signal?.throwIfAborted();
  if (input instanceof Uint8Array) return fromBytes(input, 'the given bytes', options);
  const text = input instanceof URL ? input.href : input;
  if (/^https?:\/\//i.test(text)) return download(text, options);
  if (/^data:/i.test(text)) return fromBytes(decodeDataUrl(text), 'the data: URL', options);
  if (/^file:\/\//i.test(text)) return localFile(fileURLToPath(text));
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(text))
    throw new InputError(`unsupported URL scheme in ${text}: use a local path, http(s), file or data URL`);
  return localFile(text);
}

async function localFile(path: string): Promise<LocalMedia> {
  const s = await stat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new InputError(`no such file: ${path}`);
    throw new InputError(`cannot read ${path}: ${e.message}`);
  });
  if (s.isDirectory()) throw new InputError(`${path} is a directory, not a video or image file`);
  if (!s.isFile()) throw new InputError(`${path} is not a regular file`);
  if (s.size === 0) throw new InputError(`${path} is empty (0 bytes)`);
  return { path, label: path, sizeBytes: s.size, release: async () => {} };
}

async function tempFile(): Promise<{ path: string; release(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'longshot-media-'));
  return { path: join(dir, 'input'), release: () => rm(dir, { recursive: true, force: true }) };
}

async function fromBytes(bytes: Uint8Array, label: string, options: FetchOptions): Promise<LocalMedia> {
  if (bytes.length === 0) throw new InputError(`${label} is empty (0 bytes)`);
  const max = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (bytes.length > max)
    throw new InputError(`${label} is ${bytes.length} bytes, over the ${max}-byte limit`);
  const tmp = await tempFile();
  try {
    await writeFile(tmp.path, bytes);
  } catch (e) {
    await tmp.release();
    throw e;
  }
  return { path: tmp.path, label, sizeBytes: bytes.length, release: tmp.release };
}

function decodeDataUrl(url: string): Uint8Array {
  const comma = url.indexOf(',');
  if (comma < 0) throw new InputError('malformed data: URL (no comma before the payload)');
  const meta = url.slice(5, comma);
  const payload = url.slice(comma + 1);
  if (/;base64$/i.test(meta)) {
    const clean = payload.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean)) throw new InputError('malformed data: URL (bad base64)');
    return Buffer.from(clean, 'base64');
  }
  try {
    return Buffer.from(decodeURIComponent(payload), 'latin1');
  } catch {
    throw new InputError('malformed data: URL (bad percent-encoding)');
  }
}

async function download(url: string, options: FetchOptions): Promise<LocalMedia> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const max = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const controller = new AbortController();
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  // An inactivity timer: re-armed on every chunk, so a slow but live download of a long video goes on.
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
  };
  const onAbort = () => controller.abort(options.signal!.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const tmp = await tempFile();
  let size = 0;
  try {
    arm();
    const response = await fetch(url, { signal: controller.signal, redirect: 'follow' });
    if (!response.ok)
      throw new InputError(`cannot download ${url}: HTTP ${response.status} ${response.statusText}`.trim());
    const declared = Number(response.headers.get('content-length') ?? Number.NaN);
    if (declared > max) throw new InputError(`${url} is ${declared} bytes, over the ${max}-byte limit`);
    if (!response.body) throw new InputError(`cannot download ${url}: empty response`);
    const file = createWriteStream(tmp.path);
    const closed = new Promise<void>((resolve, reject) => {
      file.once('close', resolve);
      file.once('error', reject);
    });
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        arm();
        size += chunk.length;
        if (size > max) throw new InputError(`${url} is larger than the ${max}-byte limit`);
        if (!file.write(chunk)) await new Promise<void>((resolve) => file.once('drain', () => resolve()));
      }
    } finally {
      file.end();
      await closed;
    }
    if (size === 0) throw new InputError(`${url} is empty (0 bytes)`);
    return { path: tmp.path, label: url, sizeBytes: size, release: tmp.release };
  } catch (e) {
    await tmp.release();
    if (e instanceof InputError) throw e;
    if (timedOut) throw new InputError(`${url} sent nothing for ${timeoutMs / 1000} s (timed out)`);
    if (options.signal?.aborted) throw options.signal.reason;
    throw new InputError(`cannot download ${url}: ${(e as Error).cause ?? (e as Error).message}`, {
      cause: e,
    });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    controller.abort();
  }
}
