/**
 * Chunked prefill (models/family.ts `Pieces`, the server's fair scheduling) on the tiny checkpoints (CPU, f32):
 * a video's prefill run in pieces, with a pause between two, gives the state of the prefill at once — the same
 * logits after it (≤ 1e-5 relative) and the same greedy answers — for Qwen2-VL (the video prefix in pieces of
 * tokens) and Vamba (the video path in pieces of temporal groups, its time index continuing); through the
 * facade, the pause also runs between decoded batches of frames.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { generateAll } from '../../src/generate/generate.js';
import type { Pieces } from '../../src/models/family.js';
import { Qwen2VL } from '../../src/models/qwen2vl/model.js';
import { checkpointProcessor } from '../../src/models/qwen2vl/processor.js';
import { streamVisionTokens } from '../../src/models/qwen2vl/video-stream.js';
import { Vamba } from '../../src/models/vamba/model.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { relErr, rng } from '../helpers.js';
import { writeRotatedVamba } from '../live/append-cases.js';
import { H264, makeVideo, scratch } from '../media/fixtures.js';
import { writeTinyQwen2VL, writeTinyVamba } from './tiny-models.js';

const cpu = cpuBackend();

/** Pieces of `tokens` whose pauses are counted. */
function counted(tokens: number): Pieces & { pauses: number } {
  const p = {
    tokens,
    pauses: 0,
    pause: async () => {
      p.pauses++;
      await new Promise<void>((resolve) => setImmediate(resolve));
    },
  };
  return p;
}

function frames(n: number, size: number, seed: number) {
  const r = rng(seed);
  return Array.from({ length: n }, () => ({
    width: size,
    height: size,
    data: Uint8Array.from({ length: size * size * 3 }, () => Math.floor(r() * 256)),
  }));
}

const QUESTION = [40, 41, 42, 43, 10, 11, 12];

test('Qwen2-VL: a video prefix prefilled in pieces equals the prefix prefilled at once', async () => {
  const dir = scratch();
  await writeTinyQwen2VL(dir);
  using model = await Qwen2VL.load(dir, { backend: cpu });
  const processor = await checkpointProcessor(dir, model.config.vision);
  const c = model.config;
  const { pixelValues, grids } = processor.processVideos([frames(8, 56, 3)]);
  using embeds = model.encodeVision(pixelValues, grids);
  const ids = [7, 8, 9, c.vision_start_token_id];
  ids.push(...new Array<number>(embeds.shape[0]).fill(c.video_token_id), c.vision_end_token_id);
  const inputs = { inputIds: ids, videoEmbeds: embeds, videoGridThw: grids };
  const pieces = counted(5);
  using whole = model.prefillPrefix(inputs, { room: 16 });
  using chunked = await model.prefillPrefixInPieces(inputs, { room: 16, pieces });
  assert.equal(pieces.pauses, Math.ceil(ids.length / 5) - 1);
  assert.equal(chunked.ropeDelta, whole.ropeDelta);
  assert.deepEqual(chunked.ids, whole.ids);
  const question = { inputIds: [...ids, ...QUESTION] };
  const logits = async (prefix: typeof whole) => {
    using s = model.session({ capacity: question.inputIds.length + 8, prefix });
    using l = s.prefill(question);
    return l.data();
  };
  const err = relErr(await logits(chunked), await logits(whole));
  assert.ok(err <= 1e-5, `relative logit error ${err.toExponential(2)}`);
  const answer = async (prefix: typeof whole) => {
    using s = model.session({ capacity: question.inputIds.length + 8, prefix });
    return (await generateAll(s, question, { maxNewTokens: 6, stopTokens: [], batch: false })).tokens;
  };
  assert.deepEqual(await answer(chunked), await answer(whole));
});

test('the vision stream runs whole groups of about pieces.tokens tokens once the frame size is known', async () => {
  const dir = scratch();
  await writeTinyQwen2VL(dir);
  using model = await Qwen2VL.load(dir, { backend: cpu });
  const processor = await checkpointProcessor(dir, model.config.vision);
  const all = frames(24, 56, 5);
  const whole = processor.processVideos([all]);
  using expected = model.encodeVision(whole.pixelValues, whole.grids);
  const perGroup = expected.shape[0] / whole.grids[0][0];
  const pieces = counted(2 * perGroup + 1);
  const runs: number[] = [];
  async function* batches() {
    for (let i = 0; i < all.length; i += 8) yield all.slice(i, i + 8);
  }
  const r = await streamVisionTokens(batches(), processor, {
    maxFrames: 24,
    framesPerBatch: 16,
    oddLast: 'pad',
    encode: (pixels, g) => {
      runs.push(g[0]);
      return model.encodeVision(pixels, [g]);
    },
    allocate: (g) => ops.empty(cpu, [(g[0] * g[1] * g[2]) / 4, model.config.text.hidden_size], 'f32'),
    pieces,
  });
  // The first 16 frames before the size is known, then 2 groups (4 frames) a piece.
  assert.deepEqual(runs, [8, 2, 2]);
  assert.equal(pieces.pauses, 2);
  assert.deepEqual(await r!.tokens.toArray(), await expected.toArray());
  r!.tokens.dispose();
});

test('Vamba: the video path encoded in pieces of temporal groups equals encoding it at once', async () => {
  const dir = scratch();
  // Rotated cross-attention keys: a piece's time index must continue from the groups before it.
  await writeRotatedVamba(dir);
  using model = await Vamba.load(dir, { backend: cpu });
  const { pixelValues, grids } = model.processor.processVideos([frames(10, 56, 4)]);
  const g = grids[0];
  const ms = model.config.vision.spatial_merge_size;
  const merged = [g[0], g[1] / ms, g[2] / ms] as const;
  const key = { model: model.modelId, video: 'v', sampling: 's', size: 'x', dtype: model.dtype };
  using whole = model.encodeVideoTokens(model.embedVideo(pixelValues, g), merged, key);
  // 2 groups of 4 tokens a piece: pieces of groups [0, 2), [2, 4), [4, 5).
  const pieces = counted(2 * merged[1] * merged[2]);
  using chunked = await model.encodeVideoTokensInPieces(model.embedVideo(pixelValues, g), merged, key, {
    pieces,
  });
  assert.equal(pieces.pauses, 2);
  assert.equal(chunked.tokens, whole.tokens);
  for (const [i, kv] of whole.kvs.entries())
    for (const part of ['k', 'v'] as const) {
      const got: Tensor = chunked.kvs[i][part];
      assert.deepEqual(got.shape, kv[part].shape);
      const err = relErr(await got.data(), await kv[part].data());
      assert.ok(err <= 1e-5, `layer ${i} ${part}: relative error ${err.toExponential(2)}`);
    }
  const logits = async (video: typeof whole) => {
    using s = model.session(video, { capacity: 32 });
    using l = s.prefill(QUESTION);
    return l.data();
  };
  const err = relErr(await logits(chunked), await logits(whole));
  assert.ok(err <= 1e-5, `relative logit error ${err.toExponential(2)}`);
});

for (const [family, write] of [
  ['Qwen2-VL', writeTinyQwen2VL],
  ['Vamba', writeTinyVamba],
] as const)
  test(`${family} through the facade: encodeVideo with pieces pauses between them and answers the same`, async () => {
    const dir = scratch();
    await write(dir);
    const video = await makeVideo(join(dir, 'clip.mp4'), {
      width: 96,
      height: 64,
      frames: 24,
      fps: 6,
      encode: H264,
    });
    using model = await VideoLM.load(dir, { device: 'cpu' });
    const sampling = { frames: 20, sampling: 'uniform' as const };
    const pieces = counted(6);
    using whole = await model.encodeVideo(video, sampling);
    using chunked = await model.encodeVideo(video, { ...sampling, pieces });
    // 20 frames decode in batches of 8 (2 pauses), and the prefill takes several pieces of 6 tokens.
    assert.ok(pieces.pauses > 3, `${pieces.pauses} pauses`);
    assert.equal(chunked.tokens, whole.tokens);
    const greedy = { maxNewTokens: 6, temperature: 0 };
    for (const q of ['What happens?', 'Who is there?'])
      assert.deepEqual(
        await model.ask(chunked, q, greedy).result(),
        await model.ask(whole, q, greedy).result(),
      );
  });
