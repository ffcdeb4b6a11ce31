/**
 * A folder of numbered JPEG frames (`00001.jpg`, `00002.jpg`, …, as MVBench ships TVQA's clips) made into a
 * video file the rest of the pipeline reads like any other: the JPEGs are copied, not re-encoded, into
 * Matroska at the given rate, so frame k is at k / fps seconds.
 */
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { findTools, runTool, type ToolOptions } from './ffmpeg.js';

/** The numbering of the folder's frames: first number, digit count and extension (the same for every name). */
async function numbering(dir: string): Promise<{ first: number; digits: number; ext: string }> {
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    throw new InputError(`cannot read the frame folder ${dir}: ${e.code ?? e.message}`);
  });
  const frames = names.filter((n) => /^\d+\.jpe?g$/i.test(n));
  if (!frames.length)
    throw new InputError(`${dir} holds no numbered JPEG frames (00001.jpg …): not a frame folder`);
  const digits = frames[0].split('.')[0].length;
  const ext = frames[0].slice(digits + 1);
  if (frames.some((n) => n.split('.')[0].length !== digits || n.slice(digits + 1) !== ext))
    throw new InputError(`${dir}: frame names differ in width or extension (e.g. ${frames[0]})`);
  const numbers = frames.map((n) => Number.parseInt(n, 10)).sort((a, b) => a - b);
  const first = numbers[0];
  const gap = numbers.findIndex((n, i) => n !== first + i);
  if (gap !== -1)
    throw new InputError(`${dir}: frame ${first + gap} is missing (the numbers must run without gaps)`);
  return { first, digits, ext };
}

/**
 * Writes `out` (Matroska) from the frame folder `dir` at `fps`, unless it is already there; returns `out`.
 * Written to a temporary name first, so an interrupted run never leaves a partial file behind.
 */
export async function imageSequenceVideo(
  dir: string,
  fps: number,
  out: string,
  options: ToolOptions & { signal?: AbortSignal } = {},
): Promise<string> {
  if (!(fps > 0)) throw new InputError(`a frame folder needs a positive frame rate, got ${fps}`);
  if ((await stat(out).catch(() => null))?.isFile()) return out;
  const { first, digits, ext } = await numbering(dir);
  const partial = `${out}.partial.mkv`;
  const { ffmpeg } = findTools(options);
  const args = ['-hide_banner', '-loglevel', 'error', '-framerate', String(fps)];
  args.push('-start_number', String(first), '-i', join(dir, `%0${digits}d.${ext}`));
  args.push('-c', 'copy', '-f', 'matroska', '-y', partial);
  const r = await runTool(ffmpeg, args, { signal: options.signal, what: 'ffmpeg', timeoutMs: 300_000 });
  if (r.code !== 0) {
    await rm(partial, { force: true });
    throw new InputError(`${dir}: ffmpeg could not read the frames (${r.stderr.trim().split('\n')[0]})`);
  }
  await rename(partial, out);
  return out;
}
