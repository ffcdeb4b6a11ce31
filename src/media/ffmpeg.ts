/**
 * Finding ffmpeg/ffprobe and running them. Order: an explicit option, then LONGSHOT_FFMPEG /
 * LONGSHOT_FFPROBE (what the CLI's --ffmpeg/--ffprobe set), then the binaries shipped inside
 * @ffmpeg-installer/ffmpeg and @ffprobe-installer/ffprobe (a known build, so results do not change with
 * what a machine has installed), then a system binary on PATH (for platforms the packages do not cover).
 * Every child we start is tracked so that none outlives an abort, an error or an early break.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { InputError } from '../errors.js';

export interface ToolPaths {
  ffmpeg: string;
  ffprobe: string;
}

/** Where to find the binaries; anything left out is looked up as described above. */
export interface ToolOptions {
  ffmpegPath?: string;
  ffprobePath?: string;
}

type Tool = 'ffmpeg' | 'ffprobe';
const TOOL_ENV: Record<Tool, string> = { ffmpeg: 'LONGSHOT_FFMPEG', ffprobe: 'LONGSHOT_FFPROBE' };
const PACKAGE: Record<Tool, string> = {
  ffmpeg: '@ffmpeg-installer/ffmpeg',
  ffprobe: '@ffprobe-installer/ffprobe',
};

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, process.platform === 'win32' ? `${name}.exe` : name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function shipped(tool: Tool): string | undefined {
  let path: string;
  try {
    path = (createRequire(import.meta.url)(PACKAGE[tool]) as { path: string }).path;
  } catch {
    return undefined;
  }
  // npm may skip the platform package's `chmod u+x` install script; the file is still ours to fix.
  if (!isExecutable(path)) {
    try {
      chmodSync(path, 0o755);
    } catch {
      return undefined;
    }
  }
  return isExecutable(path) ? path : undefined;
}

function locate(tool: Tool, explicit: string | undefined): string {
  const fromEnv = process.env[TOOL_ENV[tool]];
  const chosen = explicit ?? (fromEnv || undefined);
  if (chosen !== undefined) {
    if (!isExecutable(chosen))
      throw new InputError(
        `${explicit !== undefined ? `${tool} path` : TOOL_ENV[tool]} points to ${chosen}, which is not an executable file; fix the path or unset it`,
      );
    return chosen;
  }
  const found = shipped(tool) ?? onPath(tool);
  if (found === undefined)
    throw new InputError(
      `cannot find ${tool}: install it on PATH, set ${TOOL_ENV[tool]}, or reinstall longshot so that ${PACKAGE[tool]} ships its binary`,
    );
  return found;
}

/**
 * Makes the given binaries the default for this process and the processes and workers it starts (what
 * the CLI's --ffmpeg/--ffprobe do: they set LONGSHOT_FFMPEG/LONGSHOT_FFPROBE), checking them first.
 */
export function setDefaultTools(options: ToolOptions): void {
  for (const [tool, path] of [
    ['ffmpeg', options.ffmpegPath],
    ['ffprobe', options.ffprobePath],
  ] as const) {
    if (path === undefined) continue;
    locate(tool, path);
    process.env[TOOL_ENV[tool]] = path;
  }
}

const cache = new Map<string, string>();

/** Resolves both binaries (cached per explicit path and environment). */
export function findTools(options: ToolOptions = {}): ToolPaths {
  const get = (tool: Tool, explicit: string | undefined) => {
    const key = `${tool}\0${explicit ?? ''}\0${process.env[TOOL_ENV[tool]] ?? ''}\0${process.env.PATH ?? ''}`;
    let path = cache.get(key);
    if (path === undefined) {
      path = locate(tool, explicit);
      cache.set(key, path);
    }
    return path;
  };
  return { ffmpeg: get('ffmpeg', options.ffmpegPath), ffprobe: get('ffprobe', options.ffprobePath) };
}

export interface ToolVersion {
  path: string;
  /** The word after `version` on the first line of `-version` (e.g. `5.1.9-0+deb12u1`, or a git tag for static builds). */
  version: string;
}

const versionCache = new Map<string, Promise<string>>();

function versionOf(path: string): Promise<string> {
  let p = versionCache.get(path);
  if (p === undefined) {
    p = runTool(path, ['-hide_banner', '-version'], { what: `${path} -version`, timeoutMs: 10_000 }).then(
      ({ stdout }) => /version\s+(\S+)/.exec(stdout)?.[1] ?? 'unknown',
    );
    versionCache.set(path, p);
  }
  return p;
}

/** Which ffmpeg and ffprobe are used, with their versions (for `probe --json`, `info` and bug reports). */
export async function toolVersions(
  options: ToolOptions = {},
): Promise<{ ffmpeg: ToolVersion; ffprobe: ToolVersion }> {
  const tools = findTools(options);
  const [ffmpeg, ffprobe] = await Promise.all([versionOf(tools.ffmpeg), versionOf(tools.ffprobe)]);
  return {
    ffmpeg: { path: tools.ffmpeg, version: ffmpeg },
    ffprobe: { path: tools.ffprobe, version: ffprobe },
  };
}

const live = new Set<ChildProcess>();
let started = 0;

/** How many ffmpeg/ffprobe children are running now (tests assert that none is left behind). */
export function liveProcessCount(): number {
  return live.size;
}

/** How many children were started so far. */
export function startedProcessCount(): number {
  return started;
}

process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Starts a tracked child with stdout/stderr piped and stdin ignored (or piped, to feed it a stream). */
export function spawnTool(path: string, args: string[], stdin: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  const child = spawn(path, args, { stdio: [stdin, 'pipe', 'pipe'] });
  started++;
  live.add(child);
  child.once('close', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

/** Kills a child (if still running) and waits until it has exited and its pipes are closed. */
export async function stopTool(child: ChildProcess): Promise<void> {
  if (!live.has(child)) return;
  const closed = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', () => resolve());
  });
  child.kill('SIGKILL');
  // A paused pipe holding unread data never ends, and 'close' waits for it: drop what is left.
  child.stdout?.destroy();
  child.stderr?.destroy();
  await closed;
}

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a tool to completion, collecting its (bounded) output. Rejects with InputError on timeout or when
 * the output exceeds `maxOutputBytes`; rejects with the signal's reason on abort.
 */
export async function runTool(
  path: string,
  args: string[],
  options: { signal?: AbortSignal; timeoutMs?: number; maxOutputBytes?: number; what?: string } = {},
): Promise<ToolResult> {
  const { signal, timeoutMs = 60_000, maxOutputBytes = 64 << 20, what = 'ffprobe' } = options;
  signal?.throwIfAborted();
  const child = spawnTool(path, args);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let size = 0;
  let failure: unknown;
  const fail = (reason: unknown) => {
    failure ??= reason;
    child.kill('SIGKILL');
  };
  const onData = (into: Buffer[]) => (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxOutputBytes) fail(new InputError(`${what} produced more than ${maxOutputBytes} bytes`));
    else into.push(chunk);
  };
  child.stdout!.on('data', onData(out));
  child.stderr!.on('data', onData(err));
  const timer = setTimeout(
    () =>
      fail(new InputError(`${what} did not finish within ${timeoutMs / 1000} s; the file may be damaged`)),
    timeoutMs,
  );
  const onAbort = () => fail(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    if (failure !== undefined) throw failure;
    return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

const decoderCache = new Map<string, Promise<Set<string>>>();

/** The codecs this ffmpeg build can decode (`ffmpeg -codecs`, flag D), to reject unsupported ones early. */
export function decodableCodecs(ffmpeg: string): Promise<Set<string>> {
  let p = decoderCache.get(ffmpeg);
  if (p === undefined) {
    p = runTool(ffmpeg, ['-hide_banner', '-codecs'], { what: 'ffmpeg -codecs' }).then(({ stdout }) => {
      const names = new Set<string>();
      for (const line of stdout.split('\n')) {
        const m = /^\sD[E.][VASDT][I.][L.][S.]\s+(\S+)/.exec(line);
        if (m) names.add(m[1]);
      }
      return names;
    });
    decoderCache.set(ffmpeg, p);
  }
  return p;
}
