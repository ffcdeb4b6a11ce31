/**
 * The Hugging Face hub cache layout, as huggingface_hub writes it, so checkpoints downloaded by Python
 * tools are reused and ours are reused by them:
 *
 *   <cache>/models--<org>--<name>/
 *     refs/<revision>               the commit hash a branch or tag resolved to
 *     blobs/<etag>                  file contents, named by their etag (sha256 for LFS files, git sha1 else)
 *     snapshots/<commit>/<path>     relative symlinks into ../../blobs/
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';

function hfHome(env: NodeJS.ProcessEnv): string {
  if (env.HF_HOME) return env.HF_HOME;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface');
}

/** The hub cache directory, honouring the same environment variables as huggingface_hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || join(hfHome(env), 'hub');
}

/** HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the token `huggingface-cli login` stored. */
export function hubToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  if (fromEnv) return fromEnv.trim();
  const file = env.HF_TOKEN_PATH || join(hfHome(env), 'token');
  if (!existsSync(file)) return undefined;
  return readFileSync(file, 'utf8').trim() || undefined;
}

export function isOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['1', 'on', 'yes', 'true'].includes((env.HF_HUB_OFFLINE ?? '').toLowerCase());
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** True for `org/name` ids (the only form longshot accepts for hub models). */
export function looksLikeRepoId(s: string): boolean {
  return REPO_ID.test(s) && !s.includes('..') && !s.endsWith('.');
}

export function checkRepoId(repo: string): void {
  if (!looksLikeRepoId(repo))
    throw new InputError(
      `'${repo}' is not a Hugging Face model id: expected 'org/name' (e.g. TIGER-Lab/Vamba-Qwen2-VL-7B)`,
    );
}

export const isCommitHash = (rev: string): boolean => /^[0-9a-f]{40}$/.test(rev);

/** Paths of one model repository inside the cache. */
export class RepoCache {
  readonly dir: string;
  constructor(
    readonly repo: string,
    cacheDir: string = hubCacheDir(),
  ) {
    checkRepoId(repo);
    this.dir = join(cacheDir, `models--${repo.replace('/', '--')}`);
  }

  blob(etag: string): string {
    return join(this.dir, 'blobs', etag);
  }

  snapshot(commit: string): string {
    return join(this.dir, 'snapshots', commit);
  }

  ref(revision: string): string {
    return join(this.dir, 'refs', revision);
  }

  /** The commit a revision points at in the cache (a commit hash is its own answer), if known. */
  commitOf(revision: string): string | undefined {
    if (isCommitHash(revision)) return existsSync(this.snapshot(revision)) ? revision : undefined;
    const ref = this.ref(revision);
    if (!existsSync(ref)) return undefined;
    const commit = readFileSync(ref, 'utf8').trim();
    return isCommitHash(commit) ? commit : undefined;
  }
}
