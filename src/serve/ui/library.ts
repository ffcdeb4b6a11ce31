/** The videos under the media root that the UI offers: files with a video extension, a few folders deep. */
import { readdir, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';

export interface LibraryVideo {
  /** Path relative to the media root, with '/' separators (what requests name). */
  path: string;
  bytes: number;
}

const VIDEO = new Set(['.mp4', '.m4v', '.mov', '.webm', '.mkv', '.avi', '.ogv']);
const MAX_DEPTH = 4;
const MAX_FILES = 1000;

export async function listVideos(root: string): Promise<LibraryVideo[]> {
  const out: LibraryVideo[] = [];
  async function walk(dir: string, depth: number): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (out.length >= MAX_FILES || e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory() && depth < MAX_DEPTH) await walk(p, depth + 1);
      else if (e.isFile() && VIDEO.has(extname(e.name).toLowerCase()))
        out.push({ path: relative(root, p).split('\\').join('/'), bytes: (await stat(p)).size });
    }
  }
  await walk(root, 0);
  return out;
}
