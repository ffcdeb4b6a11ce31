/**
 * Downloading a model snapshot into the Hugging Face cache layout (see cache.ts): list the revision's
 * files, keep the ones longshot needs (files.ts), and fetch each missing one into `blobs/<etag>` through a
 * `.incomplete` file that a later attempt resumes with a Range request. A finished blob is checked against
 * the hub's size and etag (sha256 for LFS files, git's blob sha1 for the rest) before it is renamed into
 * place and linked from `snapshots/<commit>/`.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { ModelError } from '../errors.js';
import { hubCacheDir, hubToken, isCommitHash, isOffline, RepoCache } from './cache.js';
import { METADATA_FILES, selectFiles, shardsOfIndex, WEIGHTS_INDEX, WEIGHTS_SINGLE } from './files.js';
import { causeOf, hubFetch, raiseForStatus } from './http.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** Reports bytes as they arrive, so a caller can draw a progress bar. */
export interface DownloadReporter {
  /** Called once, before the first byte, with the bytes still to fetch. */
  start(totalBytes: number, files: number): void;
  advance(bytes: number, file: string): void;
  finish(): void;
}

export interface HubOptions {
  revision?: string;
  /** Default: HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Default: HF_TOKEN / HUGGING_FACE_HUB_TOKEN / the stored login token. */
  token?: string;
  /** Default: HF_HUB_CACHE / HF_HOME/hub / ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Never touch the network (default: HF_HUB_OFFLINE). */
  offline?: boolean;
  /** Attempts after a dropped connection, each resuming where the last stopped (default 5). */
  retries?: number;
  retryDelayMs?: number;
  reporter?: DownloadReporter;
  signal?: AbortSignal;
}

export interface Snapshot {
  repo: string;
  revision: string;
  commit: string;
  /** The snapshot directory: a checkpoint directory like any other. */
  dir: string;
  /** Files of the snapshot longshot uses, relative to `dir`. */
  files: string[];
  /** Bytes fetched by this call (0 when everything was cached). */
  downloadedBytes: number;
}

interface FileMeta {
  etag: string;
  size: number;
  /** Where to GET the bytes (the CDN's signed URL for LFS files). */
  url: string;
}

/** The files the complete cached snapshot of `repo@revision` holds, or undefined if it is incomplete. */
export async function cachedSnapshot(repo: string, opts: HubOptions = {}): Promise<Snapshot | undefined> {
  const revision = opts.revision ?? 'main';
  const cache = new RepoCache(repo, opts.cacheDir ?? hubCacheDir());
  const commit = cache.commitOf(revision);
  if (!commit) return undefined;
  const dir = cache.snapshot(commit);
  const present = (f: string) => existsSync(join(dir, f)); // follows the symlink: a dangling one is absent
  if (!present('config.json')) return undefined;
  let weights: string[];
  if (present(WEIGHTS_INDEX))
    weights = [WEIGHTS_INDEX, ...shardsOfIndex(await readFile(join(dir, WEIGHTS_INDEX), 'utf8'), dir)];
  else if (present(WEIGHTS_SINGLE)) weights = [WEIGHTS_SINGLE];
  else return undefined;
  if (!weights.every(present)) return undefined;
  const files = [...METADATA_FILES.filter(present), ...weights];
  return { repo, revision, commit, dir, files, downloadedBytes: 0 };
}

/**
 * Makes the snapshot of `repo@revision` complete in the cache (downloading only what is missing) and
 * returns it. Offline, the cache alone answers.
 */
export async function snapshotDownload(repo: string, opts: HubOptions = {}): Promise<Snapshot> {
  const revision = opts.revision ?? 'main';
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  const cache = new RepoCache(repo, cacheDir);
  if (opts.offline ?? isOffline()) {
    const hit = await cachedSnapshot(repo, { ...opts, revision, cacheDir });
    if (hit) return hit;
    throw new ModelError(
      `${repo}@${revision} is not (completely) in the cache ${cacheDir} and HF_HUB_OFFLINE is set; unset it to download`,
    );
  }
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const token = opts.token ?? hubToken();
  const { reporter, ...rest } = opts;
  const ctx: Ctx = { ...rest, repo, endpoint, token };

  const listing = await listRevision(ctx, revision);
  const commit = listing.commit;
  const snapshotDir = cache.snapshot(commit);
  const wanted = selectFiles(repo, listing.siblings);

  // Metadata first (small), then the weights whose names the index gives.
  const metas = new Map<string, FileMeta>();
  const missing = async (file: string) => {
    if (existsSync(join(snapshotDir, file))) return false;
    metas.set(file, await headFile(ctx, commit, file));
    return true;
  };
  const small = wanted.filter((f) => f !== WEIGHTS_SINGLE);
  let downloadedBytes = 0;
  for (const file of small)
    if (await missing(file)) downloadedBytes += await fetchInto(ctx, cache, commit, file, metas.get(file)!);
  const weights = wanted.includes(WEIGHTS_INDEX)
    ? shardsOfIndex(await readFile(join(snapshotDir, WEIGHTS_INDEX), 'utf8'), `${repo}@${revision}`)
    : [WEIGHTS_SINGLE];
  const toFetch: string[] = [];
  for (const file of weights) if (await missing(file)) toFetch.push(file);

  reporter?.start(
    toFetch.reduce((s, f) => s + metas.get(f)!.size, 0),
    toFetch.length,
  );
  try {
    for (const file of toFetch)
      downloadedBytes += await fetchInto(ctx, cache, commit, file, metas.get(file)!, reporter);
  } finally {
    reporter?.finish();
  }
  if (!isCommitHash(revision)) {
    await mkdir(dirname(cache.ref(revision)), { recursive: true });
    await writeFile(cache.ref(revision), commit);
  }
  const files = [...small, ...weights.filter((w) => !small.includes(w))];
  return { repo, revision, commit, dir: snapshotDir, files, downloadedBytes };
}

interface Ctx extends Pick<HubOptions, 'retries' | 'retryDelayMs' | 'signal'> {
  repo: string;
  endpoint: string;
  token?: string;
}

async function listRevision(ctx: Ctx, revision: string): Promise<{ commit: string; siblings: string[] }> {
  const url = `${ctx.endpoint}/api/models/${ctx.repo}/revision/${encodeURIComponent(revision)}`;
  const res = await hubFetch(url, { auth: authFor(ctx), follow: 'all', signal: ctx.signal });
  await raiseForStatus(res, ctx.repo, `revision ${revision}`);
  const body = (await res.json().catch(() => null)) as {
    sha?: unknown;
    siblings?: Array<{ rfilename?: unknown }>;
  } | null;
  const commit = body?.sha;
  if (typeof commit !== 'string' || !isCommitHash(commit) || !Array.isArray(body?.siblings))
    throw new ModelError(`${ctx.endpoint} answered the listing of ${ctx.repo} without a commit and files`);
  const siblings = body.siblings.map((s) => s.rfilename).filter((f): f is string => typeof f === 'string');
  return { commit, siblings };
}

function resolveUrl(ctx: Ctx, commit: string, file: string): string {
  return `${ctx.endpoint}/${ctx.repo}/resolve/${commit}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

/** HEAD for the etag and size (X-Linked-* for LFS files, whose bytes live behind a CDN redirect). */
async function headFile(ctx: Ctx, commit: string, file: string): Promise<FileMeta> {
  const url = resolveUrl(ctx, commit, file);
  const res = await hubFetch(url, {
    method: 'HEAD',
    auth: authFor(ctx),
    follow: 'relative',
    headers: { 'accept-encoding': 'identity' },
    signal: ctx.signal,
  });
  await raiseForStatus(res, ctx.repo, file);
  const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
  const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length'));
  if (!etag || !Number.isSafeInteger(size) || size < 0)
    throw new ModelError(
      `${ctx.endpoint} gave no etag or size for ${ctx.repo}/${file}; is HF_ENDPOINT a hub?`,
    );
  const location = res.headers.get('location');
  return { etag, size, url: location ? new URL(location, res.url || url).toString() : url };
}

const authFor = (ctx: Ctx) => ({ token: ctx.token, origin: new URL(ctx.endpoint).origin });

const normalizeEtag = (e: string | null) => e?.replace(/^W\//, '').replace(/"/g, '') || undefined;

/** Fetches one file into its blob (resuming a partial one) and links it into the snapshot. */
async function fetchInto(
  ctx: Ctx,
  cache: RepoCache,
  commit: string,
  file: string,
  meta: FileMeta,
  reporter?: DownloadReporter,
) {
  const blob = cache.blob(meta.etag);
  let fetched = 0;
  if (!existsSync(blob)) {
    await mkdir(dirname(blob), { recursive: true });
    const retries = ctx.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      try {
        fetched += await fetchBlob(ctx, file, meta, blob, reporter);
        break;
      } catch (e) {
        if (!(e instanceof DroppedConnection) || attempt >= retries) {
          if (e instanceof DroppedConnection)
            throw new ModelError(
              `${cache.repo}/${file}: the connection dropped ${attempt + 1} time(s) (${e.message}); run the command again to resume from ${blob}.incomplete`,
            );
          throw e;
        }
        fetched += e.bytes;
        await new Promise((r) => setTimeout(r, (ctx.retryDelayMs ?? 1000) * (attempt + 1)));
      }
    }
  }
  await linkIntoSnapshot(blob, join(cache.snapshot(commit), file));
  return fetched;
}

class DroppedConnection extends Error {
  constructor(
    message: string,
    readonly bytes: number,
  ) {
    super(message);
  }
}

/** One attempt: append to `<blob>.incomplete` from where it ends, verify, rename. Returns bytes fetched. */
async function fetchBlob(ctx: Ctx, file: string, meta: FileMeta, blob: string, reporter?: DownloadReporter) {
  const partial = `${blob}.incomplete`;
  let have = existsSync(partial) ? (await stat(partial)).size : 0;
  if (have > meta.size) {
    await rm(partial);
    have = 0;
  }
  const hash = hasherFor(meta);
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (have > 0) headers.range = `bytes=${have}-`;
  const res =
    have === meta.size
      ? undefined
      : await hubFetch(meta.url, { auth: authFor(ctx), follow: 'all', headers, signal: ctx.signal });
  if (res) await raiseForStatus(res, ctx.repo, file);
  if (res && have > 0 && res.status !== 206) have = 0; // the server ignored the range: start over
  if (hash && have > 0)
    for await (const chunk of createReadStream(partial, { end: have - 1 })) hash.update(chunk);

  const out = await open(partial, have > 0 ? 'a' : 'w');
  let got = 0;
  try {
    if (res?.body) {
      const reader = res.body.getReader();
      for (;;) {
        let step: ReadableStreamReadResult<Uint8Array>;
        try {
          step = await reader.read();
        } catch (e) {
          throw new DroppedConnection(causeOf(e), got);
        }
        if (step.done) break;
        await out.write(step.value);
        hash?.update(step.value);
        got += step.value.length;
        reporter?.advance(step.value.length, file);
      }
    }
  } finally {
    await out.close();
  }
  const size = have + got;
  if (size < meta.size) throw new DroppedConnection(`got ${size} of ${meta.size} bytes`, got);
  if (size !== meta.size || (hash && hash.digest() !== meta.etag)) {
    await rm(partial, { force: true });
    throw new ModelError(
      `${ctx.repo}/${file}: the download is corrupt (${size === meta.size ? `${hash?.algorithm} mismatch` : `${size} bytes, expected ${meta.size}`}); run the command again`,
    );
  }
  await rename(partial, blob);
  return got;
}

/** sha256 for LFS files (64-hex etag), git's blob sha1 for the others (40-hex etag), else nothing to check. */
function hasherFor(meta: FileMeta) {
  const algorithm = /^[0-9a-f]{64}$/.test(meta.etag)
    ? 'sha256'
    : /^[0-9a-f]{40}$/.test(meta.etag)
      ? 'sha1'
      : '';
  if (!algorithm) return undefined;
  const h: Hash = createHash(algorithm);
  // git hashes "blob <size>\0" before the content; an LFS sha256 is of the content alone.
  if (algorithm === 'sha1') h.update(`blob ${meta.size}\0`);
  return { algorithm, update: (d: Uint8Array) => h.update(d), digest: () => h.digest('hex') };
}

/** A relative symlink like huggingface_hub's (a copy where symlinks are not allowed, e.g. Windows). */
async function linkIntoSnapshot(blob: string, target: string): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  await rm(target, { force: true });
  try {
    await symlink(relative(dirname(target), blob), target);
  } catch {
    await copyFile(blob, target);
  }
}
