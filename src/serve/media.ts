/**
 * Turning a request's `video_url` / `image_url` into a local file and its content hash. Local paths (and
 * file:// URLs) are allowed only under the server's `allowedRoot`, checked after resolving symlinks, so
 * `../` or a link cannot reach outside it; http(s) URLs only when remote media is enabled.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openInput } from '../media/source.js';
import { ApiError, badRequest } from './errors.js';
import type { MediaRef } from './request.js';

export interface MediaPolicy {
  /** Directory whose files requests may name; undefined: no local files. */
  allowedRoot?: string;
  /** Whether http(s) URLs may be fetched. */
  allowRemote: boolean;
  /** Largest download or data: URL, bytes. */
  maxBytes: number;
}

export interface LocalMediaFile {
  path: string;
  sha256: string;
  release(): Promise<void>;
}

const forbidden = (ref: MediaRef, why: string) =>
  new ApiError(403, `${ref.param}: ${why}`, 'invalid_request_error', ref.param, 'media_not_allowed');

export async function resolveMedia(
  ref: MediaRef,
  policy: MediaPolicy,
  signal?: AbortSignal,
): Promise<LocalMediaFile> {
  const url = ref.url;
  if (/^https?:\/\//i.test(url)) {
    if (!policy.allowRemote)
      throw forbidden(ref, 'http(s) media is disabled on this server (start it with --allow-remote-media)');
    return withHash(await openInput(url, { maxBytes: policy.maxBytes, signal }));
  }
  if (/^data:/i.test(url)) return withHash(await openInput(url, { maxBytes: policy.maxBytes, signal }));
  if (/^[a-z][a-z0-9+.-]+:/i.test(url) && !/^file:/i.test(url))
    throw badRequest(
      `${ref.param}: unsupported URL scheme; use http(s), data: or a path under the server's media root`,
      ref.param,
    );
  if (!policy.allowedRoot)
    throw forbidden(ref, 'local files are disabled on this server (start it with --allowed-root <dir>)');
  const root = await realpath(policy.allowedRoot);
  const asPath = /^file:/i.test(url) ? fileURLToPath(url) : url;
  const lexical = resolve(root, asPath);
  if (!inside(root, lexical)) throw forbidden(ref, 'the path is outside the server’s media root');
  const real = await realpath(lexical).catch(() => {
    throw badRequest(
      `${ref.param}: no such file under the media root: ${relative(root, lexical)}`,
      ref.param,
      'invalid_media',
    );
  });
  if (!inside(root, real)) throw forbidden(ref, 'the path leads outside the server’s media root');
  return withHash(await openInput(real, { signal }));
}

function inside(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (r !== '..' && !r.startsWith(`..${sep}`) && !isAbsolute(r));
}

async function withHash(local: { path: string; release(): Promise<void> }): Promise<LocalMediaFile> {
  try {
    const h = createHash('sha256');
    for await (const chunk of createReadStream(local.path)) h.update(chunk);
    return { path: local.path, sha256: h.digest('hex'), release: local.release };
  } catch (e) {
    await local.release();
    throw e;
  }
}
