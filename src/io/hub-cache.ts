/**
 * Finding a model in the local Hugging Face hub cache, so checkpoints users already downloaded with
 * huggingface_hub / transformers are reused as they are. Layout:
 * `<cache>/models--<org>--<name>/{refs/<revision> (a commit hash), snapshots/<commit>/<files>}`.
 * Nothing here downloads.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ModelError } from '../errors.js';

/** The hub cache directory, honouring the same environment variables as huggingface_hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  const home = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface');
  return join(home, 'hub');
}

const REPO_ID = /^[\w.-]+\/[\w.-]+$/;
const COMMIT = /^[0-9a-f]{40}$/;

export interface ResolveOptions {
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  cacheDir?: string;
}

/**
 * A local directory holding the model: `pathOrRepoId` itself when it is a directory, otherwise the
 * cached snapshot of the hub repo `org/name` at `revision`.
 */
export async function resolveModelDir(pathOrRepoId: string, opts: ResolveOptions = {}): Promise<string> {
  const st = await stat(pathOrRepoId).catch(() => null);
  if (st?.isDirectory()) return pathOrRepoId;
  if (!REPO_ID.test(pathOrRepoId))
    throw new ModelError(`${pathOrRepoId}: no such model directory (and not a hub id of the form org/name)`);
  const cache = opts.cacheDir ?? hubCacheDir();
  const revision = opts.revision ?? 'main';
  const repoDir = join(cache, `models--${pathOrRepoId.replace('/', '--')}`);
  const notCached = (why: string) =>
    new ModelError(
      `${pathOrRepoId}: not in the Hugging Face cache (${why}); download it first, or pass a local directory`,
    );
  let commit = revision;
  if (!COMMIT.test(revision)) {
    const ref = await readFile(join(repoDir, 'refs', revision), 'utf8').catch(() => null);
    if (ref === null) throw notCached(`no ${join(repoDir, 'refs', revision)}`);
    commit = ref.trim();
  }
  const snapshot = join(repoDir, 'snapshots', commit);
  const entries = await readdir(snapshot).catch(() => null);
  if (!entries?.length) throw notCached(`snapshot ${snapshot} is missing or empty`);
  return snapshot;
}
