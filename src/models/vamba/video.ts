/**
 * Vamba's video encoding from decoded frames (research/vamba.md §4): the facade samples and decodes them
 * with Vamba's policy (family.ts: 512 frames at 256/480, 1024 at 256/560 from 30 minutes), then Qwen2-VL's
 * smart_resize, normalisation and patching run here, an odd last frame dropped. Frames stream through in
 * batches: patched and run through the vision tower a few at a time, so pixels never sit in memory for the
 * whole video. The result is a `VambaVideoHandle` keyed by the video's content and its preprocessing.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { InputError } from '../../errors.js';
import type { Frame, MediaInput } from '../../media/index.js';
import * as ops from '../../runtime/ops.js';
import type { Pieces } from '../family.js';
import { streamVisionTokens } from '../qwen2vl/video-stream.js';
import type { Vamba } from './model.js';
import type { VambaVideoHandle, VideoKey } from './video-handle.js';

export interface VambaFramesOptions {
  /** Frames asked for (the stream yields at most this many). */
  frames: number;
  /** One still picture (an image): it is paired with itself. */
  still?: boolean;
  /** How they were sampled and pre-resized (part of the handle's key). */
  sampling: string;
  shortestEdge: number;
  longestEdge: number;
  /** The input they came from: a local file keys the handle by the file's hash, anything else by the frames'. */
  input?: MediaInput;
  /** Frames patched and encoded per batch (even; default 16). */
  framesPerBatch?: number;
  /** Video tokens per Mamba chunk (default 4096). */
  chunkLen?: number;
  signal?: AbortSignal;
  /** Chunked prefill: the video path in pieces, `pause` awaited between them (models/family.ts). */
  pieces?: Pieces;
  /** Called after each batch with the frames encoded so far. */
  onFrames?: (done: number, tokens?: number) => void;
}

/** Frames patched and encoded per batch unless told otherwise. */
export const FRAMES_PER_BATCH = 16;

/** sha256 of a local file's bytes, or null when the input is not a local file. */
async function fileDigest(input: MediaInput | undefined): Promise<string | null> {
  if (typeof input !== 'string' || /^[a-z]+:/i.test(input)) return null;
  if (!(await stat(input).catch(() => null))?.isFile()) return null;
  const h = createHash('sha256');
  for await (const chunk of createReadStream(input)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** A lone still frame becomes a temporal pair (Vamba drops an odd last frame, which would leave nothing). */
async function* pairedStill(frames: AsyncIterable<Frame[]>): AsyncGenerator<Frame[]> {
  for await (const batch of frames) yield batch.length === 1 ? [batch[0], batch[0]] : batch;
}

/** Patches and encodes decoded frames (in batches, in sampled order) into a handle; see the module comment. */
export async function encodeVideoFrames(
  model: Vamba,
  frames: AsyncIterable<Frame[]>,
  o: VambaFramesOptions,
): Promise<VambaVideoHandle> {
  const perBatch = o.framesPerBatch ?? FRAMES_PER_BATCH;
  if (!Number.isInteger(perBatch) || perBatch < 2 || perBatch % 2)
    throw new InputError(`framesPerBatch must be an even integer ≥ 2 (got ${perBatch})`);
  const still = o.still ?? false;
  const fileHash = await fileDigest(o.input);
  const frameHash = createHash('sha256');
  const ms = model.config.vision.spatial_merge_size;
  // Every decoded frame goes into the key's hash when the input is not a file (its content is the identity).
  async function* hashed(stream: AsyncIterable<Frame[]>) {
    for await (const batch of stream) {
      if (!fileHash) for (const f of batch) frameHash.update(f.data);
      yield batch;
    }
  }
  const r = await streamVisionTokens(hashed(still ? pairedStill(frames) : frames), model.processor, {
    maxFrames: still ? 2 : o.frames,
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
    pieces: o.pieces,
    onFrames: o.onFrames && (still ? (_, tokens) => o.onFrames?.(1, tokens) : o.onFrames),
  });
  if (!r)
    throw new InputError(
      `${labelOf(o.input)}: fewer than 2 frames could be decoded; a video needs at least 2`,
    );
  const [gt, gh, gw] = r.grid;
  const patch = model.config.vision.patch_size;
  const key: VideoKey = {
    model: model.modelId,
    video: fileHash ?? `frames-sha256:${frameHash.digest('hex')}`,
    sampling: `${o.sampling}:${o.frames}`,
    size: `vamba ${o.shortestEdge}/${o.longestEdge} → ${gw * patch}x${gh * patch}`,
    frames: String(r.frames),
    dtype: model.dtype,
  };
  // The handle owns the tokens from here.
  const merged = [gt, gh / ms, gw / ms] as const;
  return o.pieces
    ? model.encodeVideoTokensInPieces(r.tokens, merged, key, { chunkLen: o.chunkLen, pieces: o.pieces })
    : model.encodeVideoTokens(r.tokens, merged, key, o.chunkLen);
}

const labelOf = (input: MediaInput | undefined) =>
  input === undefined ? 'the frames' : input instanceof Uint8Array ? 'the given bytes' : String(input);
