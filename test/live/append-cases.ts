/**
 * The live-video equality cases, for the CPU test (append-equality.test.ts) and the CUDA one
 * (test-cuda/live.test.ts): a video of 70 frames appended in pieces of 1, 7 and 64 frames against the same
 * video encoded at once, compared by the logits of a question (max |Δ| relative to the largest logit). The
 * reference is the library's one-go path: Vamba's encodeVideo, Qwen2-VL's full forward over the prompt.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Frame } from '../../src/media/index.js';
import type { LiveContext } from '../../src/models/family.js';
import { Qwen2VLLiveVideo } from '../../src/models/qwen2vl/live.js';
import { Qwen2VL } from '../../src/models/qwen2vl/model.js';
import { checkpointProcessor } from '../../src/models/qwen2vl/processor.js';
import { VambaLiveVideo } from '../../src/models/vamba/live.js';
import { Vamba } from '../../src/models/vamba/model.js';
import type { VambaVideo } from '../../src/models/vamba/video-handle.js';
import type { Backend } from '../../src/runtime/backend.js';
import type { DType } from '../../src/runtime/dtype.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { TINY_VAMBA_CONFIG, writeTinyQwen2VL, writeTinyVamba } from '../facade/tiny-models.js';
import { rng } from '../helpers.js';

const FRAMES = 70;
export const PIECES = [1, 7, 64];
const context: LiveContext = {
  sampling: { sampling: 'fps', fps: 1, frames: 1024, maxEdge: 112, minEdge: 56 },
  label: 'test stream',
};

/** Seeded random frames (smooth enough that the vision tower sees structure, not only noise). */
function randomFrames(n: number, width: number, height: number, seed: number): Frame[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, index) => {
    const data = new Uint8Array(width * height * 3);
    const [a, b, c] = [r() * 255, r() * 255, r() * 8];
    for (let i = 0; i < width * height; i++)
      for (let ch = 0; ch < 3; ch++)
        data[i * 3 + ch] = Math.floor((a + b * ((i % width) / width) + c * ch + r() * 40) % 256);
    return { index, timestampSec: index, width, height, data };
  });
}

function pieces<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** max |a − b| / max |b|: relative to the largest logit. */
async function relToMax(a: Tensor, b: Tensor): Promise<number> {
  const [x, y] = [await a.data(), await b.data()];
  assert.equal(x.length, y.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    d = Math.max(d, Math.abs(x[i] - y[i]));
    m = Math.max(m, Math.abs(y[i]));
  }
  return d / m;
}

const QUESTION_IDS = [4, 40, 41, 42, 43, 10, 11, 12];

/** The relative logit error of each piece size, for Vamba. */
export async function vambaErrors(
  dir: string,
  width: number,
  height: number,
  backend: Backend,
  dtype?: DType,
): Promise<number[]> {
  using model = await Vamba.load(dir, { backend, dtype });
  const errors: number[] = [];
  const frames = randomFrames(FRAMES, width, height, 5);
  const question = QUESTION_IDS.map((i) => i % model.config.text.vocab_size);
  const { pixelValues, grids } = model.processor.processVideos([frames]);
  using whole = model.encodeVideo(pixelValues, grids[0]);
  const expected = (() => {
    using session = model.session(whole, { capacity: 64 });
    return session.prefill(question);
  })();
  for (const size of PIECES) {
    using live = new VambaLiveVideo(model, context);
    for (const piece of pieces(frames, size)) await live.append(piece);
    assert.equal(live.frames, FRAMES);
    assert.equal(live.encodedFrames, FRAMES);
    assert.equal(live.tokens, whole.tokens);
    const snap = live.snapshot() as VambaVideo;
    using session = model.session(snap.handle, { capacity: 64 });
    using got = session.prefill(question);
    errors.push(await relToMax(got, expected));
    snap.dispose();
  }
  expected.dispose();
  return errors;
}

/** The relative logit error of each piece size, for Qwen2-VL. */
export async function qwen2vlErrors(
  dir: string,
  width: number,
  height: number,
  backend: Backend,
  dtype?: DType,
): Promise<number[]> {
  using model = await Qwen2VL.load(dir, { backend, dtype });
  const errors: number[] = [];
  const processor = await checkpointProcessor(dir, model.config.vision);
  const frames = randomFrames(FRAMES, width, height, 6);
  const c = model.config;
  const vocab = c.text.vocab_size;
  // <|im_start|>-like opening text, <|vision_start|>, the video's pads, <|vision_end|>, a question.
  const opening = [7, 8, 9, c.vision_start_token_id].map((i) => i % vocab);
  const { pixelValues, grids } = processor.processVideos([frames]);
  const pads = (grids[0][0] * grids[0][1] * grids[0][2]) / c.vision.spatial_merge_size ** 2;
  const rest = [c.vision_end_token_id, ...QUESTION_IDS.map((i) => i % vocab)];
  const ids = [...opening, ...new Array<number>(pads).fill(c.video_token_id), ...rest];
  const expected = (() => {
    using all = model.forward({ inputIds: ids, pixelValuesVideos: pixelValues, videoGridThw: grids });
    return ops.slice(all, 0, ids.length - 1, ids.length);
  })();
  for (const size of PIECES) {
    using live = new Qwen2VLLiveVideo(model, processor, opening, context);
    for (const piece of pieces(frames, size)) await live.append(piece);
    assert.equal(live.tokens, pads);
    const snap = live.snapshot();
    using session = model.session({ capacity: ids.length + 4, prefix: snap.prefix });
    using got = session.prefill({ inputIds: ids });
    errors.push(await relToMax(got, expected));
    snap.dispose();
  }
  expected.dispose();
  return errors;
}

/** A tiny random Vamba whose cross-attention keys are rotated and normalised (the time index must continue). */
export async function writeRotatedVamba(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await writeTinyVamba(dir, 21);
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      ...TINY_VAMBA_CONFIG,
      cross_attn_use_position_embeddings: true,
      cross_attn_use_layer_norm: true,
    }),
  );
}

export async function writeRandomQwen2VL(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await writeTinyQwen2VL(dir, 22);
}
