/**
 * Vamba's video preprocessing (research/vamba.md §4): frames picked by the evaluation rule (midpoints of
 * n equal intervals), the Vamba pre-resize (longest side ≤ longestEdge, each side ≥ shortestEdge), then
 * Qwen2-VL's smart_resize, normalisation and patching, an odd last frame dropped. Defaults are the official
 * evaluation's: 512 frames at 256/480, and 1024 frames at 256/560 for hour-long videos (LVBench); all
 * overridable. Frames stream through in batches: decoded, patched and run through the vision tower a few at a
 * time, so pixels never sit in memory for the whole video.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { InputError } from '../../errors.js';
import type { Frame } from '../../media/decode.js';
import { vambaResize } from '../../media/resize.js';
import type { SamplingPolicy } from '../../media/sampling.js';
import type { MediaInput } from '../../media/source.js';
import { openVideo } from '../../media/video.js';
import * as ops from '../../runtime/ops.js';
import type { Qwen2VLProcessor } from '../qwen2vl/processor.js';
import { streamVisionTokens } from '../qwen2vl/video-stream.js';
import type { Vamba } from './model.js';
import type { VideoHandle, VideoKey } from './video-handle.js';

export interface VambaVideoOptions {
  /** Frames to sample (default 512; 1024 for hour-long videos). */
  numFrames?: number;
  /** 'uniform' (evaluation scripts, default) or 'middle' (chat / training). */
  sampling?: 'uniform' | 'middle';
  /** Pre-resize bounds (default 256 / 480; 256 / 560 for hour-long videos). */
  shortestEdge?: number;
  longestEdge?: number;
  /** Videos at least this long (seconds) get the hour-long defaults (default 1800). */
  hourLongFrom?: number;
  /** Frames decoded and encoded per batch (even; default 16). */
  framesPerBatch?: number;
  /** Video tokens per Mamba chunk (default 4096). */
  chunkLen?: number;
  signal?: AbortSignal;
  /** Called once the frames are chosen, with their number (progress bars). */
  onStart?: (frames: number) => void;
  /** Called after each batch with the frames decoded and encoded so far. */
  onFrames?: (done: number) => void;
}

export interface VambaVideoSettings {
  numFrames: number;
  sampling: 'uniform' | 'middle';
  shortestEdge: number;
  longestEdge: number;
}

export const VAMBA_EVAL_SETTINGS: Readonly<VambaVideoSettings> = {
  numFrames: 512,
  sampling: 'uniform',
  shortestEdge: 256,
  longestEdge: 480,
};
export const VAMBA_HOUR_SETTINGS: Readonly<VambaVideoSettings> = {
  numFrames: 1024,
  sampling: 'uniform',
  shortestEdge: 256,
  longestEdge: 560,
};

/** The settings for a video of this duration (null: unknown → the 512-frame defaults), with overrides. */
export function vambaVideoSettings(
  durationSec: number | null,
  o: VambaVideoOptions = {},
): VambaVideoSettings {
  const base =
    durationSec !== null && durationSec >= (o.hourLongFrom ?? 1800)
      ? VAMBA_HOUR_SETTINGS
      : VAMBA_EVAL_SETTINGS;
  const s = {
    numFrames: o.numFrames ?? base.numFrames,
    sampling: o.sampling ?? base.sampling,
    shortestEdge: o.shortestEdge ?? base.shortestEdge,
    longestEdge: o.longestEdge ?? base.longestEdge,
  };
  if (!Number.isInteger(s.numFrames) || s.numFrames < 2)
    throw new InputError(`numFrames must be an integer ≥ 2 (got ${s.numFrames})`);
  if (!(s.shortestEdge >= 1 && s.longestEdge >= s.shortestEdge))
    throw new InputError(
      `edges must satisfy 1 ≤ shortestEdge ≤ longestEdge (got ${s.shortestEdge}/${s.longestEdge})`,
    );
  return s;
}

/** sha256 of a local file's bytes, or null when the input is not a local file. */
async function fileDigest(input: MediaInput): Promise<string | null> {
  if (typeof input !== 'string' || /^[a-z]+:/i.test(input)) return null;
  if (!(await stat(input).catch(() => null))?.isFile()) return null;
  const h = createHash('sha256');
  for await (const chunk of createReadStream(input)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** Decodes, preprocesses and encodes a video file (or URL) into a handle; see the module comment. */
export async function encodeVideoInput(
  model: Vamba,
  processor: Qwen2VLProcessor,
  input: MediaInput,
  o: VambaVideoOptions = {},
): Promise<VideoHandle> {
  const perBatch = o.framesPerBatch ?? 16;
  if (!Number.isInteger(perBatch) || perBatch < 2 || perBatch % 2)
    throw new InputError(`framesPerBatch must be an even integer ≥ 2 (got ${perBatch})`);
  await using video = await openVideo(input, { signal: o.signal });
  const s = vambaVideoSettings(video.info.durationSec, o);
  const policy: SamplingPolicy = { kind: s.sampling, numFrames: s.numFrames };
  const fileHash = await fileDigest(input);
  const frameHash = createHash('sha256');
  const ms = model.config.vision.spatial_merge_size;
  // Every decoded frame goes into the key's hash when the input is not a file (its content is the identity).
  async function* hashed(stream: AsyncIterable<Frame[]>) {
    for await (const batch of stream) {
      if (!fileHash) for (const f of batch) frameHash.update(f.data);
      yield batch;
    }
  }
  const sample = await video.sample(policy);
  o.onStart?.(sample.indices.length);
  const stream = video.frames(sample, { size: vambaResize(s.shortestEdge, s.longestEdge), signal: o.signal });
  const r = await streamVisionTokens(hashed(stream), processor, {
    maxFrames: s.numFrames,
    framesPerBatch: perBatch,
    oddLast: 'drop', // Vamba's processor drops an odd last frame
    encode: (pixels, g) => model.embedVideo(pixels, g),
    allocate: (g) => {
      model.assertVideoFits(g, { chunkLen: o.chunkLen });
      return ops.empty(
        model.backend,
        [(g[0] * g[1] * g[2]) / ms ** 2, model.config.text.hidden_size],
        model.dtype,
      );
    },
    signal: o.signal,
    onFrames: o.onFrames,
  });
  if (!r)
    throw new InputError(`${String(input)}: fewer than 2 frames could be decoded; a video needs at least 2`);
  const [gt, gh, gw] = r.grid;
  const patch = model.config.vision.patch_size;
  const key: VideoKey = {
    model: model.modelId,
    video: fileHash ?? `frames-sha256:${frameHash.digest('hex')}`,
    sampling: `${s.sampling}:${s.numFrames}`,
    size: `vamba ${s.shortestEdge}/${s.longestEdge} → ${gw * patch}x${gh * patch}`,
    frames: String(r.frames),
    dtype: model.dtype,
  };
  // The handle owns the tokens from here.
  return model.encodeVideoTokens(r.tokens, [gt, gh / ms, gw / ms], key, o.chunkLen);
}
