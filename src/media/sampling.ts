/**
 * Which frames each model's reference preprocessing picks. Each rule returns frame indices (into the
 * video's frames in presentation order), non-decreasing, possibly with repeats (padding). The arithmetic
 * follows the reference code's number types, so the indices match it exactly:
 * numpy linspace (float64), torch.linspace (float64 steps for int, float32 for float), Python/torch round
 * (half to even).
 */
import { InputError } from '../errors.js';

export type SamplingPolicy =
  /** Vamba chat (`train/data.py::get_frame_indices`, "middle"): n equal integer intervals, middle frame of each; padded with the last frame. */
  | { kind: 'middle'; numFrames: number }
  /** Vamba eval (`eval/utils_*.py::uniform_indices`): midpoints of `linspace(0, total, n+1)`; every frame when n ≥ total. */
  | { kind: 'uniform'; numFrames: number }
  /** qwen-vl-utils `smart_nframes` with an fps (default 2, 4..768 frames, even counts), then `linspace(0, total−1, n).round()`. */
  | { kind: 'fps'; fps?: number; minFrames?: number; maxFrames?: number }
  /** qwen-vl-utils with an explicit `nframes` (rounded to even). */
  | { kind: 'nframes'; numFrames: number }
  /** TimeViper eval (`fps_indices`): frames at `fps` from the start, the first `maxFrames` kept, padded to a multiple of `multipleOf`; fewer than `minFrames` falls back to `uniform`. */
  | { kind: 'first-seconds'; fps?: number; maxFrames?: number; minFrames?: number; multipleOf?: number }
  /** Every frame. */
  | { kind: 'all' }
  /** Caller-chosen indices (non-decreasing). */
  | { kind: 'indices'; indices: number[] };

/** A stretch of a video, in seconds from its start (MVBench's `start`/`end` bounds). */
export interface Clip {
  startSec: number;
  endSec: number;
}

export interface VideoTiming {
  /** Frames in the video. */
  frameCount: number;
  /** Average frame rate. */
  fps: number;
}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torch.linspace(start, end, steps, dtype=int): float64 steps, filled from both ends, truncated. */
function torchLinspaceInt(start: number, end: number, steps: number): number[] {
  const step = (end - start) / (steps - 1);
  const half = Math.floor(steps / 2);
  return Array.from({ length: steps }, (_, i) =>
    Math.trunc(i < half ? start + step * i : end - step * (steps - i - 1)),
  );
}

/** torch.linspace(start, end, steps) in the default float32, filled from both ends. */
function torchLinspaceF32(start: number, end: number, steps: number): number[] {
  if (steps === 1) return [Math.fround(start)];
  const f = Math.fround;
  const step = f(f(end - start) / (steps - 1));
  const half = Math.floor(steps / 2);
  return Array.from({ length: steps }, (_, i) =>
    i < half ? f(start + f(step * i)) : f(end - f(step * (steps - i - 1))),
  );
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new InputError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** Vamba "middle": intervals = `np.linspace(0, vlen, n+1).astype(int)`, index `(a + b − 1) // 2`. */
function middle(numFrames: number, total: number): number[] {
  const n = Math.min(numFrames, total);
  const step = total / n; // numpy: arange(0, n+1) * step, the last point set to `stop`
  const edges = Array.from({ length: n + 1 }, (_, i) => (i === n ? total : Math.trunc(i * step)));
  const picked = Array.from({ length: n }, (_, i) => Math.floor((edges[i] + edges[i + 1] - 1) / 2));
  while (picked.length < numFrames) picked.push(picked[picked.length - 1]);
  return picked;
}

/** Vamba eval `uniform_indices`. */
function uniform(numFrames: number, total: number): number[] {
  if (numFrames >= total) return Array.from({ length: total }, (_, i) => i);
  const s = torchLinspaceInt(0, total, numFrames + 1);
  return Array.from({ length: numFrames }, (_, i) => Math.floor((s[i] + s[i + 1]) / 2));
}

/** qwen-vl-utils: `linspace(0, total − 1, n).round()`, after checking 2 ≤ n ≤ total. */
function qwenIndices(n: number, total: number): number[] {
  if (n < 2 || n > total)
    throw new InputError(
      `qwen-vl-utils sampling needs between 2 and ${total} frames (the video has ${total}), got ${n}`,
    );
  return torchLinspaceF32(0, total - 1, n).map(roundHalfEven);
}

/** qwen-vl-utils `smart_nframes` for an fps. */
export function qwenFrameCount(
  total: number,
  videoFps: number,
  fps = 2.0,
  minFrames = 4,
  maxFrames = 768,
): number {
  const FACTOR = 2;
  const minF = Math.ceil(minFrames / FACTOR) * FACTOR;
  const maxF = Math.floor(Math.min(maxFrames, total) / FACTOR) * FACTOR;
  let n = (total / videoFps) * fps;
  n = Math.min(Math.max(n, minF), maxF, total);
  return Math.floor(n / FACTOR) * FACTOR;
}

/** TimeViper: `torch.arange(0, total, input_fps / fps).round()` (float32), then truncate, pad, or fall back. */
function firstSeconds(
  total: number,
  videoFps: number,
  fps: number,
  maxFrames: number,
  minFrames: number,
  multipleOf: number,
): number[] {
  const delta = videoFps / fps;
  const count = Math.ceil(total / delta);
  let picked: number[] = [];
  for (let i = 0; i < count; i++) {
    const idx = roundHalfEven(Math.fround(i * delta));
    if (idx < total) picked.push(idx);
  }
  if (maxFrames > 0 && picked.length > maxFrames) picked = picked.slice(0, maxFrames);
  while (picked.length % multipleOf !== 0) picked.push(picked[picked.length - 1]);
  if (picked.length < minFrames) return uniform(minFrames, total);
  return picked;
}

/** The frame indices `policy` picks from a video with `timing`. */
export function sampleIndices(policy: SamplingPolicy, timing: VideoTiming): number[] {
  const total = timing.frameCount;
  if (!Number.isInteger(total) || total < 1) throw new InputError('the video has no frames to sample');
  const fps = timing.fps > 0 ? timing.fps : 1;
  switch (policy.kind) {
    case 'middle':
      return middle(positiveInt('numFrames', policy.numFrames), total);
    case 'uniform':
      return uniform(positiveInt('numFrames', policy.numFrames), total);
    case 'fps': {
      const rate = policy.fps ?? 2.0;
      if (!(rate > 0)) throw new InputError(`fps must be positive, got ${rate}`);
      return qwenIndices(qwenFrameCount(total, fps, rate, policy.minFrames, policy.maxFrames), total);
    }
    case 'nframes':
      return qwenIndices(roundHalfEven(positiveInt('numFrames', policy.numFrames) / 2) * 2, total);
    case 'first-seconds': {
      const rate = policy.fps ?? 1;
      if (!(rate > 0)) throw new InputError(`fps must be positive, got ${rate}`);
      return firstSeconds(
        total,
        fps,
        rate,
        policy.maxFrames ?? 256,
        policy.minFrames ?? 32,
        positiveInt('multipleOf', policy.multipleOf ?? 4),
      );
    }
    case 'all':
      return Array.from({ length: total }, (_, i) => i);
    case 'indices': {
      const { indices } = policy;
      if (indices.length === 0) throw new InputError('no frame indices given');
      indices.forEach((x, i) => {
        if (!Number.isInteger(x) || x < 0 || x >= total)
          throw new InputError(`frame index ${x} is outside the video's ${total} frames`);
        if (i > 0 && x < indices[i - 1]) throw new InputError('frame indices must be non-decreasing');
      });
      return [...indices];
    }
  }
}

/**
 * The frames of `clip`, as MVBench's `get_index` bounds them: from `round(start · fps)` to
 * `min(round(end · fps), last frame)`, both included. A policy then samples inside that range.
 */
export function clipFrames(clip: Clip, timing: VideoTiming): { first: number; count: number } {
  const { startSec, endSec } = clip;
  if (!(Number.isFinite(startSec) && startSec >= 0 && Number.isFinite(endSec) && endSec > startSec))
    throw new InputError(`a clip needs 0 ≤ start < end (seconds), got start ${startSec} and end ${endSec}`);
  const fps = timing.fps > 0 ? timing.fps : 1;
  const first = roundHalfEven(startSec * fps);
  const last = Math.min(roundHalfEven(endSec * fps), timing.frameCount - 1);
  if (last < first)
    throw new InputError(
      `the clip ${startSec}–${endSec} s starts after the video ends (${(timing.frameCount / fps).toFixed(2)} s)`,
    );
  return { first, count: last - first + 1 };
}

/** `sampleIndices` over the frames of `clip` only (the whole video without one). */
export function sampleClip(policy: SamplingPolicy, timing: VideoTiming, clip?: Clip): number[] {
  if (!clip) return sampleIndices(policy, timing);
  const { first, count } = clipFrames(clip, timing);
  return sampleIndices(policy, { ...timing, frameCount: count }).map((i) => i + first);
}
