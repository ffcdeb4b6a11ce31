/**
 * The embedded model's one-time notice: the first time it answers in an interactive terminal, one line on
 * stderr says that it is a tiny demo and how to use a real checkpoint; a state file under the user's cache
 * directory (LONGSHOT_CACHE_DIR, else $XDG_CACHE_HOME/longshot, else ~/.cache/longshot) remembers that it
 * was shown. Scripts (stderr not a TTY) never see it; `--json` names the model as the embedded demo instead.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const EMBEDDED_NOTICE =
  'longshot: note: with no --model, answers come from a tiny demo model trained only on synthetic needle videos ' +
  '(coloured shapes, words and numbers on cards); for real videos pass --model, e.g. --model TIGER-Lab/Vamba-Qwen2-VL-7B';

/** Where longshot keeps small state of its own. */
export function longshotCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.LONGSHOT_CACHE_DIR || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'longshot');
}

const SHOWN_FILE = 'embedded-model-notice-shown';

/** Writes the notice once per user to an interactive `stream`; an unwritable cache only means it shows again. */
export function noticeEmbeddedModel(
  stream: { isTTY?: boolean; write(s: string): unknown } = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): void {
  if (!stream.isTTY) return;
  const dir = longshotCacheDir(env);
  const file = join(dir, SHOWN_FILE);
  if (existsSync(file)) return;
  stream.write(`${EMBEDDED_NOTICE}\n`);
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, `${new Date().toISOString()}\n`);
  } catch {
    // A read-only home: the notice shows again next time, which is harmless.
  }
}
