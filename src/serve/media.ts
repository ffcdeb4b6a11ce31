/**
 * Turning a request's `video_url` / `image_url` into a local file and its content hash. Local paths (and
 * file:// URLs) are allowed only under the server's `allowedRoot`, checked after resolving symlinks, so
 * `../` or a link cannot reach outside it; http(s) URLs only when remote media is enabled. Messages about
 * the file name it as the client did, never by the server's absolute path or a temporary file's name.
 * `upload:<id>` names a video uploaded through the web UI (serve/ui/uploads.ts).
 */
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.js';
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
  /** Files uploaded through the web UI, by id (`upload:<id>` URLs); none: uploads are refused. */
  uploads?: { path(id: string): string | undefined };
}

export interface LocalMediaFile {
  path: string;
  sha256: string;
  /** `text` with this file's server-side path (and its folder) replaced by what the client sent. */
  redact(text: string): string;
  release(): Promise<void>;
}

/** The media root must be an existing directory: checked once when the server starts, not per request. */
export function checkAllowedRoot(dir: string): void {
  const s = statSync(dir, { throwIfNoEntry: false });
  if (!s?.isDirectory())
    throw new UsageError(
      `--allowed-root ${dir}: ${s ? 'not a directory' : 'no such directory'}; give the folder whose videos requests may name`,
    );
}

/** Replaces each server-side string by its public name, longest first (a file before its folder). */
function redactor(pairs: Array<[hidden: string, shown: string]>): (text: string) => string {
  const sorted = pairs.filter(([h]) => h.length > 1).sort((a, b) => b[0].length - a[0].length);
  return (text) => sorted.reduce((t, [h, shown]) => t.split(h).join(shown), text);
}

const clientName = (ref: MediaRef) => (/^data:/i.test(ref.url) ? 'the data: URL' : ref.url);

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
    return withHash(await openInput(url, { maxBytes: policy.maxBytes, signal }), ref);
  }
  if (/^data:/i.test(url)) return withHash(await openInput(url, { maxBytes: policy.maxBytes, signal }), ref);
  const { path: real, root } = await localMediaPath(ref, policy);
  const local = await openInput(real, { signal }).catch((e: Error) => {
    const shown = redactor([
      [real, clientName(ref)],
      [`${root ?? dirname(real)}${sep}`, ''],
    ])(e.message);
    throw badRequest(`${ref.param}: ${shown}`, ref.param, 'invalid_media');
  });
  return withHash(local, ref, root);
}

/**
 * The file a local reference names: an upload's, or a path (or file:// URL) under the media root, checked
 * after resolving symlinks. `root` is the media root the path was found under (none for an upload).
 */
export async function localMediaPath(
  ref: MediaRef,
  policy: MediaPolicy,
): Promise<{ path: string; root?: string }> {
  const url = ref.url;
  if (/^upload:/i.test(url)) {
    const path = policy.uploads?.path(url.slice('upload:'.length));
    if (!path)
      throw badRequest(
        `${ref.param}: no such upload on this server (${url}); upload the video again`,
        ref.param,
        'invalid_media',
      );
    return { path };
  }
  if (/^[a-z][a-z0-9+.-]+:/i.test(url) && !/^file:/i.test(url))
    throw badRequest(
      `${ref.param}: unsupported URL scheme; use http(s), data:, upload: or a path under the server's media root`,
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
  return { path: real, root };
}

/** Whether path `p` lies within directory `root` (both absolute). */
export function inside(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (r !== '..' && !r.startsWith(`..${sep}`) && !isAbsolute(r));
}

async function withHash(
  local: { path: string; release(): Promise<void> },
  ref: MediaRef,
  root?: string,
): Promise<LocalMediaFile> {
  try {
    const h = createHash('sha256');
    for await (const chunk of createReadStream(local.path)) h.update(chunk);
    // A temporary copy (data: or http) is named as the client named it, and its folder never shown.
    const hidden: Array<[string, string]> = [[local.path, clientName(ref)]];
    if (root) hidden.push([`${root}${sep}`, '']);
    else hidden.push([`${dirname(local.path)}${sep}`, '']);
    const redact = redactor(hidden);
    return { path: local.path, sha256: h.digest('hex'), redact, release: local.release };
  } catch (e) {
    await local.release();
    throw e;
  }
}
