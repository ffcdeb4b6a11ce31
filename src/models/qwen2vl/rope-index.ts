/**
 * Qwen2-VL's M-RoPE position ids (`get_rope_index`). Text tokens advance all three rows (t, h, w) together.
 * A vision span of grid (t, h, w) patches occupies (t, h/m, w/m) merged tokens; token (i, j, k) gets
 * positions (s + i, s + j, s + k) where s is one past the largest position so far. Text after a span resumes
 * at one past the span's largest position. `ropeDelta` = (largest position + 1) − sequence length: during
 * decoding, token number n (0-based over the whole sequence) sits at position n + ropeDelta on all rows.
 * A reduced video (`videoRows`: for each of its tokens in the prompt, the merged token of the grid it stands for)
 * keeps those tokens' positions; the span still advances past the whole grid.
 */
import { InputError } from '../../errors.js';
import type { GridTHW } from './vision.js';

export interface RopeIndexTokens {
  image_token_id: number;
  video_token_id: number;
}

export interface RopeIndex {
  /** Rows t, h, w, each one position per input token. */
  positions: [Int32Array, Int32Array, Int32Array];
  ropeDelta: number;
}

export function getRopeIndex(
  inputIds: ArrayLike<number>,
  tokens: RopeIndexTokens,
  imageGrids: readonly GridTHW[],
  videoGrids: readonly GridTHW[],
  mergeSize: number,
  videoRows: readonly number[] | null = null,
): RopeIndex {
  if (videoRows && videoGrids.length !== 1)
    throw new InputError(`a reduced video must be the prompt's only video (${videoGrids.length} given)`);
  const n = inputIds.length;
  const rows3: [Int32Array, Int32Array, Int32Array] = [
    new Int32Array(n),
    new Int32Array(n),
    new Int32Array(n),
  ];
  let next = 0; // one past the largest position so far
  let image = 0;
  let video = 0;
  let i = 0;
  while (i < n) {
    const id = inputIds[i];
    const isImage = id === tokens.image_token_id;
    if (!isImage && id !== tokens.video_token_id) {
      rows3[0][i] = rows3[1][i] = rows3[2][i] = next++;
      i++;
      continue;
    }
    const grids = isImage ? imageGrids : videoGrids;
    const k = isImage ? image++ : video++;
    const kind = isImage ? 'image' : 'video';
    if (k >= grids.length)
      throw new InputError(`the prompt has more ${kind} spans than the ${grids.length} ${kind}(s) given`);
    const [gt, gh, gw] = grids[k];
    const h = gh / mergeSize;
    const w = gw / mergeSize;
    const rows = !isImage && videoRows ? videoRows : null;
    const count = rows ? rows.length : gt * h * w;
    for (let j = 0; j < count; j++)
      if (inputIds[i + j] !== id)
        throw new InputError(
          `${kind} ${k} needs ${count} consecutive pad tokens for its grid [${gt}, ${gh}, ${gw}], found ${j}`,
        );
    for (let j = 0; j < count; j++) {
      const r = rows ? rows[j] : j; // token (t, y, x) of the grid, in raster order
      const at = i + j;
      rows3[0][at] = next + Math.floor(r / (h * w));
      rows3[1][at] = next + Math.floor((r % (h * w)) / w);
      rows3[2][at] = next + (r % w);
    }
    next += Math.max(gt, h, w);
    i += count;
  }
  if (image !== imageGrids.length || video !== videoGrids.length)
    throw new InputError(
      `the prompt has ${image} image and ${video} video span(s) but ${imageGrids.length} image(s) and ${videoGrids.length} video(s) were given`,
    );
  return { positions: rows3, ropeDelta: next - n };
}
