/**
 * The Qwen2-VL processor (transformers 5.x `Qwen2VLImageProcessor` / `Qwen2VLVideoProcessor`, torchvision
 * backends, and the pad expansion of `Qwen2VLProcessor`) on raw RGB frames:
 *   smart_resize (factor patch·merge = 28, pixel bounds, Python's round-half-to-even) → antialiased bicubic on
 *   uint8 → (x − 255·mean) / (255·std) in f32 → frames paired in time (an odd count repeats the last frame,
 *   an image is repeated ×2) → patch rows of [C][T][ph][pw] values in token order [t][h/2][w/2][2][2].
 */
import { join } from 'node:path';
import { InputError } from '../../errors.js';
import { fileExists, readJsonFile } from '../../io/json-fields.js';
import { type BicubicPrecision, resizeBicubic } from '../../media/bicubic.js';
import { roundHalfEven } from '../../media/sampling.js';
import type { Backend } from '../../runtime/backend.js';
import * as ops from '../../runtime/ops.js';
import { tidy } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Qwen2VLVisionConfig } from './config.js';
import {
  type PreprocessorConfig,
  parsePreprocessorConfig,
  QWEN2VL_PREPROCESSOR,
  readPreprocessorConfig,
} from './preprocessor-config.js';
import type { GridTHW } from './vision.js';

/** One RGB24 picture, row-major HWC (a decoded video frame fits). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface SmartResizeOptions {
  factor?: number;
  minPixels: number;
  maxPixels: number;
}

/**
 * Height and width, multiples of `factor`, closest to the input's aspect ratio with
 * minPixels ≤ h·w ≤ maxPixels. Returns [height, width].
 */
export function smartResize(height: number, width: number, opts: SmartResizeOptions): [number, number] {
  const factor = opts.factor ?? 28;
  if (!(height > 0 && width > 0)) throw new InputError(`smart_resize: invalid size ${width}x${height}`);
  if (Math.max(height, width) / Math.min(height, width) > 200)
    throw new InputError(`smart_resize: aspect ratio of ${width}x${height} exceeds 200`);
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > opts.maxPixels) {
    const beta = Math.sqrt((height * width) / opts.maxPixels);
    h = Math.floor(height / beta / factor) * factor;
    w = Math.floor(width / beta / factor) * factor;
  } else if (h * w < opts.minPixels) {
    const beta = Math.sqrt(opts.minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  if (h < factor || w < factor)
    throw new InputError(
      `smart_resize: ${width}x${height} cannot fit a ${factor}-pixel grid within the pixel bounds`,
    );
  return [h, w];
}

export interface VisualBatch {
  /** Patch rows [Σ t·h·w, C·T·P·P], flattened. */
  pixelValues: Float32Array;
  grids: GridTHW[];
}

export interface ProcessorOptions {
  /** Which library's fixed-point bicubic to reproduce (default torchvision: transformers 5.x default). */
  resample?: BicubicPrecision;
  /** An odd frame count: repeat the last frame (Hugging Face, default) or drop it (Vamba). */
  oddFrames?: 'pad' | 'drop';
}

export const IMAGE_PAD = '<|image_pad|>';
export const VIDEO_PAD = '<|video_pad|>';

export class Qwen2VLProcessor {
  constructor(
    readonly image: PreprocessorConfig,
    readonly video: PreprocessorConfig = image,
    readonly options: ProcessorOptions = {},
  ) {}

  /**
   * Reads `preprocessor_config.json` and, when present, `video_preprocessor_config.json` (otherwise videos
   * use the image settings, as transformers falls back to them).
   */
  static async load(dir: string, options: ProcessorOptions = {}): Promise<Qwen2VLProcessor> {
    const image = await readPreprocessorConfig(dir);
    const videoPath = join(dir, 'video_preprocessor_config.json');
    const video = (await fileExists(videoPath))
      ? parsePreprocessorConfig(await readJsonFile(videoPath), videoPath)
      : image;
    return new Qwen2VLProcessor(image, video, options);
  }

  /** Images, each its own grid (t = 1: the picture repeated ×2 in time). */
  processImages(images: readonly RgbImage[]): VisualBatch {
    return concat(images.map((img) => this.preprocess([img], this.image)));
  }

  /** Videos given as their sampled frames (all frames of one video the same size). */
  processVideos(videos: readonly (readonly RgbImage[])[]): VisualBatch {
    return concat(videos.map((frames) => this.preprocess(this.#videoFrames(frames), this.video)));
  }

  /**
   * processVideos' patch rows made on `backend` ([Σ t·h·w, C·T·P·P] f32, the same values: the same f32
   * subtraction and division): the frames go up as bytes, a quarter of the f32 rows, and the normalising and
   * reordering run there instead of a host loop over every value (the training step's largest host cost).
   * Videos of one size and length that need no resize go up together; others one by one.
   */
  videosOn(backend: Backend, videos: readonly (readonly RgbImage[])[]): { pixels: Tensor; grids: GridTHW[] } {
    const c = this.video;
    const clips = videos.map((frames) => this.#resized(this.#videoFrames(frames), c));
    const same = clips.every(
      (x) => x.rgb.length === clips[0].rgb.length && x.grid.join() === clips[0].grid.join(),
    );
    const groups = same ? [clips] : clips.map((x) => [x]);
    return tidy(() => {
      const parts = groups.map((g) =>
        devicePatchify(
          backend,
          g.map((x) => x.rgb),
          g[0].grid,
          c,
        ),
      );
      return {
        pixels: parts.length === 1 ? parts[0] : ops.concat(parts, 0),
        grids: clips.map((x) => x.grid),
      };
    });
  }

  /** A video's frames with Vamba's odd-frame drop applied; at least one. */
  #videoFrames(frames: readonly RgbImage[]): readonly RgbImage[] {
    const t = this.video.temporal_patch_size;
    if (frames.length % t && this.options.oddFrames === 'drop')
      frames = frames.slice(0, frames.length - (frames.length % t));
    if (!frames.length) throw new InputError('a video needs at least one frame');
    return frames;
  }

  /** One image or video → patch rows and grid. */
  preprocess(
    frames: readonly RgbImage[],
    c: PreprocessorConfig,
  ): { pixelValues: Float32Array; grid: GridTHW } {
    const { rgb, grid } = this.#resized(frames, c);
    return { pixelValues: patchify(rgb, grid, grid[2] * c.patch_size, c), grid };
  }

  /** Checked frames at the resized size, padded in time to whole temporal patches, and their grid. */
  #resized(frames: readonly RgbImage[], c: PreprocessorConfig): { rgb: Uint8Array[]; grid: GridTHW } {
    const { width, height } = frames[0];
    for (const fr of frames) {
      if (fr.width !== width || fr.height !== height)
        throw new InputError(
          `frames differ in size (${fr.width}x${fr.height} vs ${width}x${height}); resize them to one size first`,
        );
      if (fr.data.length !== fr.width * fr.height * 3)
        throw new InputError(
          `a ${fr.width}x${fr.height} RGB frame needs ${fr.width * fr.height * 3} bytes, got ${fr.data.length}`,
        );
    }
    const factor = c.patch_size * c.merge_size;
    const [rh, rw] = c.do_resize
      ? smartResize(height, width, { factor, minPixels: c.min_pixels, maxPixels: c.max_pixels })
      : [height, width];
    if (rh % factor || rw % factor)
      throw new InputError(`${rw}x${rh} frames are not multiples of ${factor} pixels; enable do_resize`);
    const rgb = frames.map((fr) =>
      rh !== height || rw !== width
        ? resizeBicubic(fr.data, width, height, rw, rh, this.options.resample)
        : fr.data,
    );
    const tp = c.temporal_patch_size;
    while (rgb.length % tp) rgb.push(rgb[rgb.length - 1]);
    return { rgb, grid: [rgb.length / tp, rh / c.patch_size, rw / c.patch_size] };
  }

  /**
   * Replaces the i-th `<|image_pad|>` (`<|video_pad|>`) of the prompt text by t·h·w / merge² copies for the
   * i-th image (video), as `Qwen2VLProcessor.__call__` does.
   */
  expandPads(text: string, grids: { image?: readonly GridTHW[]; video?: readonly GridTHW[] }): string {
    const expand = (s: string, pad: string, list: readonly GridTHW[], merge: number, kind: string) => {
      const parts = s.split(pad);
      if (parts.length - 1 !== list.length)
        throw new InputError(
          `the prompt has ${parts.length - 1} ${pad} but ${list.length} ${kind}(s) were given`,
        );
      return parts.reduce((acc, part, i) => acc + pad.repeat(tokenCount(list[i - 1], merge)) + part);
    };
    const withImages = expand(text, IMAGE_PAD, grids.image ?? [], this.image.merge_size, 'image');
    return expand(withImages, VIDEO_PAD, grids.video ?? [], this.video.merge_size, 'video');
  }
}

/** Qwen2-VL-7B-Instruct's pixel settings with a vision tower's patch sizes (a checkpoint that ships none). */
export function defaultProcessor(
  vision: Qwen2VLVisionConfig,
  options: ProcessorOptions = {},
): Qwen2VLProcessor {
  const c = parsePreprocessorConfig({
    ...QWEN2VL_PREPROCESSOR,
    patch_size: vision.patch_size,
    temporal_patch_size: vision.temporal_patch_size,
    merge_size: vision.spatial_merge_size,
  });
  return new Qwen2VLProcessor(c, c, options);
}

/** A checkpoint's processor: its preprocessor_config.json (and video_preprocessor_config.json), else the default. */
export async function checkpointProcessor(
  dir: string,
  vision: Qwen2VLVisionConfig,
  options: ProcessorOptions = {},
): Promise<Qwen2VLProcessor> {
  return (await fileExists(join(dir, 'preprocessor_config.json')))
    ? Qwen2VLProcessor.load(dir, options)
    : defaultProcessor(vision, options);
}

/** LLM tokens of one grid: t·h·w / merge². */
export const tokenCount = ([t, h, w]: GridTHW, merge = 2): number => (t * h * w) / (merge * merge);

const f = Math.fround;

/**
 * Per channel, each uint8 value's normalised f32: (x − mean·255) / (std·255) as the fused f32
 * rescale+normalise computes it (a value depends only on its byte, so a table of 256 is exact).
 */
function normalizeTables(c: PreprocessorConfig): Float32Array[] {
  const { mean, std } = normalizeConstants(c);
  return [0, 1, 2].map((ch) => Float32Array.from({ length: 256 }, (_, v) => f(f(v - mean[ch]) / std[ch])));
}

/** Per channel, the f32 mean and std on the 0–255 scale that normalizeTables divides by. */
function normalizeConstants(c: PreprocessorConfig): { mean: Float32Array; std: Float32Array } {
  const k = c.do_rescale ? 1 / c.rescale_factor : 1;
  return {
    mean: Float32Array.from([0, 1, 2], (ch) => (c.do_normalize ? f(f(c.image_mean[ch]) * k) : 0)),
    std: Float32Array.from([0, 1, 2], (ch) => (c.do_normalize ? f(f(c.image_std[ch]) * k) : k)),
  };
}

/**
 * HWC uint8 frames (time-padded) → normalised rows [C][T][ph][pw] in token order [t][h/m][w/m][m][m], read
 * straight from the bytes (no intermediate planes).
 */
function patchify(
  frames: Uint8Array[],
  [gt, gh, gw]: GridTHW,
  width: number,
  c: PreprocessorConfig,
): Float32Array {
  const { patch_size: p, temporal_patch_size: tp, merge_size: m } = c;
  const tables = normalizeTables(c);
  const out = new Float32Array(gt * gh * gw * 3 * tp * p * p);
  let o = 0;
  for (let t = 0; t < gt; t++)
    for (let bh = 0; bh < gh / m; bh++)
      for (let bw = 0; bw < gw / m; bw++)
        for (let ih = 0; ih < m; ih++)
          for (let iw = 0; iw < m; iw++) {
            const y0 = (bh * m + ih) * p;
            const x0 = (bw * m + iw) * p;
            for (let ch = 0; ch < 3; ch++) {
              const table = tables[ch];
              for (let dt = 0; dt < tp; dt++) {
                const src = frames[t * tp + dt];
                for (let y = 0; y < p; y++) {
                  let at = ((y0 + y) * width + x0) * 3 + ch;
                  for (let x = 0; x < p; x++, at += 3) out[o++] = table[src[at]];
                }
              }
            }
          }
  return out;
}

/**
 * patchify on a backend for videos of one grid: bytes [v·t, T, h, P, w, P, C] → f32, normalised per channel
 * ((x − mean) / std with normalizeTables' f32 constants) → [v·t, h, w, C, T, P, P] → token order
 * [v·t, h/m, w/m, m, m, ·] as rows.
 */
function devicePatchify(
  backend: Backend,
  videos: readonly Uint8Array[][],
  [gt, gh, gw]: GridTHW,
  c: PreprocessorConfig,
): Tensor {
  const { patch_size: p, temporal_patch_size: tp, merge_size: m } = c;
  const frame = gh * p * gw * p * 3;
  const n = videos.length * gt;
  const raw = ops.empty(backend, [n, tp, gh, p, gw, p, 3], 'u8');
  // Each video goes up into its rows: straight from its bytes when its frames lie one after another in one
  // buffer (a training example's do), else through one copy.
  videos.forEach((frames, v) => {
    const first = frames[0];
    const span = frames.every(
      (f, i) => f.buffer === first.buffer && f.byteOffset === first.byteOffset + i * frame,
    )
      ? new Uint8Array(first.buffer, first.byteOffset, frames.length * frame)
      : joinFrames(frames, frame);
    const rows = raw.narrow(v * gt, (v + 1) * gt);
    backend.upload(rows, span);
    rows.dispose();
  });
  // The bytes take the patch order (a quarter of the traffic of moving floats), then become normalised floats.
  const rows = ops.permute(raw, [0, 2, 4, 6, 1, 3, 5]).reshape([n, gh / m, m, gw / m, m, 3 * tp * p * p]);
  const patches = ops.permute(rows, [0, 1, 3, 2, 4, 5]).reshape([n * gh * gw, 3, tp * p * p]);
  const { mean, std } = normalizeConstants(c);
  const x = ops.cast(patches, 'f32');
  const normed = ops.div(ops.sub(x, ops.tensor(backend, mean, [3, 1])), ops.tensor(backend, std, [3, 1]));
  return normed.reshape([n * gh * gw, 3 * tp * p * p]);
}

function joinFrames(frames: readonly Uint8Array[], frame: number): Uint8Array {
  const out = new Uint8Array(frames.length * frame);
  for (const [i, f] of frames.entries()) out.set(f, i * frame);
  return out;
}

function concat(items: { pixelValues: Float32Array; grid: GridTHW }[]): VisualBatch {
  const pixelValues = new Float32Array(items.reduce((n, i) => n + i.pixelValues.length, 0));
  let at = 0;
  for (const i of items) {
    pixelValues.set(i.pixelValues, at);
    at += i.pixelValues.length;
  }
  return { pixelValues, grids: items.map((i) => i.grid) };
}
