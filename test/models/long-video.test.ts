/**
 * The long-video path: vision streamed in batches of temporal groups, Qwen2-VL prefilled from encoded video
 * tokens (both against the transformers fixtures), Vamba's memory estimate against the sizes written out
 * here, and the fit check that refuses a video before any work.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { OutOfMemoryError } from '../../src/errors.js';
import { boundEdges } from '../../src/media/resize.js';
import { openVideo } from '../../src/media/video.js';
import { assertFits } from '../../src/models/fit.js';
import { parseQwen2VLConfig } from '../../src/models/qwen2vl/config.js';
import { Qwen2VL } from '../../src/models/qwen2vl/model.js';
import { encodeVisionStream, type PixelBatch } from '../../src/models/qwen2vl/vision.js';
import { vambaConfigJson } from '../../src/models/vamba/convert.js';
import { Vamba } from '../../src/models/vamba/model.js';
import { estimateVambaMemory } from '../../src/models/vamba/size.js';
import { H264, makeVideo, scratch } from '../media/fixtures.js';
import { configJson } from './config-fixtures.js';
import { FIXTURES, grids, readArrays, readJson, relErr } from './qwen2vl-fixtures.js';
import { encodeVideoFile, VAMBA_FIXTURES } from './vamba-fixtures.js';

const cpu = cpuBackend();

test('Qwen2-VL: vision streamed one temporal group at a time, then prefill from the encoded tokens', async () => {
  const dir = join(FIXTURES, 'tiny-a');
  using model = await Qwen2VL.load(dir, { backend: cpu });
  const ref = await readArrays(join(dir, 'reference.safetensors'));
  const meta = await readJson(join(dir, 'reference.json'));
  const proc = await readArrays(join(FIXTURES, 'processor', 'outputs.safetensors'));
  const pixels = proc.get('video.pixel_values_videos')!.data as Float32Array;
  const [grid] = grids(proc, 'video.video_grid_thw');
  const [t, h, w] = grid;
  const rowLen = pixels.length / (t * h * w);
  function* oneGroupEach(): Generator<PixelBatch> {
    for (let g = 0; g < t; g++)
      yield { pixels: pixels.subarray(g * h * w * rowLen, (g + 1) * h * w * rowLen), groups: 1 };
  }
  using V = encodeVisionStream(model.visual, oneGroupEach(), grid, 'f32');
  const tokErr = relErr(await V.data(), ref.get('video.video_embeds')!.data);
  assert.ok(tokErr <= 1e-4, `video tokens: relative error ${tokErr}`);

  using logits = model.forward({
    inputIds: meta.prompts.video.input_ids,
    videoGridThw: [grid],
    videoEmbeds: V,
  });
  const err = relErr(await logits.data(), ref.get('video.logits')!.data);
  assert.ok(err <= 1e-4, `logits from encoded tokens: relative error ${err}`);
  assert.ok(!V.disposed, 'the encoded tokens stay with the caller');

  // A stream that does not match the grid is refused.
  const short = oneGroupEach();
  assert.throws(() => encodeVisionStream(model.visual, [short.next().value!], grid, 'f32'), /groups arrived/);
  assert.throws(
    () => encodeVisionStream(model.visual, [...oneGroupEach(), ...oneGroupEach()], grid, 'f32'),
    /more than/,
  );
});

test('estimateVambaMemory: Vamba-Qwen2-VL-7B on 1024 frames of 640×360, term by term', () => {
  const config = parseQwen2VLConfig(vambaConfigJson(configJson('qwen2vl-7b-instruct')));
  const e = estimateVambaMemory(config, { frames: 1024 });
  // 640×360 → 644×364: 46×26 patches, 23×13 = 299 tokens per two frames.
  assert.equal(e.videoTokens, 512 * 299);
  assert.equal(e.parameters, 11_309_837_020);
  assert.equal(e.weightBytes, 2 * 11_309_837_020);
  // 28 layers × tokens × (K and V: 4 heads × 128) × 2 bytes.
  assert.equal(e.videoKVBytes, 28 * 153_088 * 2 * 4 * 128 * 2);
  assert.equal(e.videoStreamBytes, 153_088 * 3584 * 2);
  assert.equal(e.phase, 'llm');
  assert.equal(e.totalBytes, e.weightBytes + e.videoStreamBytes + e.videoKVBytes + e.mambaChunkBytes);
  // The working set does not grow with the video: only K/V and V do.
  const long = estimateVambaMemory(config, { frames: 3600 });
  assert.equal(long.mambaChunkBytes, e.mambaChunkBytes);
  assert.equal(long.visionChunkBytes, e.visionChunkBytes);
  assert.equal(long.videoTokens, 1800 * 299);
  // The same video given as a patch grid.
  const byGrid = estimateVambaMemory(config, { frames: 1024, grid: [512, 26, 46] });
  assert.equal(byGrid.totalBytes, e.totalBytes);
  // Measured on an H200 (docs/benchmarks/long_video.json): 30.5 and 53.4 GiB live peaks.
  assert.ok(Math.abs(e.totalBytes / 2 ** 30 - 30.5) < 1.5);
  assert.ok(Math.abs(long.totalBytes / 2 ** 30 - 53.4) < 1.5);
});

test('assertFits: an OutOfMemoryError with the numbers, before any work', async () => {
  const GiB = 2 ** 30;
  assert.doesNotThrow(() => assertFits(cpu, 10 * GiB, 'x', {}, 80 * GiB));
  assert.throws(
    () =>
      assertFits(
        cpu,
        90 * GiB,
        'Vamba on 9000 frames',
        { weights: 21 * GiB, 'video K/V': 69 * GiB },
        80 * GiB,
      ),
    (e: Error) =>
      e instanceof OutOfMemoryError &&
      /Vamba on 9000 frames needs about 90\.0 GiB \(weights 21\.0 GiB, video K\/V 69\.0 GiB\)/.test(
        e.message,
      ) &&
      /78\.5 GiB usable of 80\.0 GiB/.test(e.message),
  );

  using model = await Vamba.load(join(VAMBA_FIXTURES, 'tiny-a'), { backend: cpu });
  let pulled = 0;
  function* batches(): Generator<PixelBatch> {
    pulled++;
    yield { pixels: new Float32Array(0), groups: 0 };
  }
  // 10⁹ temporal groups: far beyond any machine's memory; refused without reading a frame.
  const huge: [number, number, number] = [1e9, 4, 4];
  assert.throws(() => model.assertVideoFits(huge), OutOfMemoryError);
  assert.throws(
    () =>
      model.encodeVideoStream(batches(), huge, { model: '', video: '', sampling: '', size: '', dtype: '' }),
    OutOfMemoryError,
  );
  assert.equal(pulled, 0);
});

test('Vamba from a decoded file: a video shorter than the frames asked for fills part of the one output', async () => {
  const dir = scratch();
  try {
    const path = await makeVideo(join(dir, 'short.mp4'), {
      width: 64,
      height: 48,
      frames: 6,
      fps: 10,
      encode: H264,
    });
    using model = await Vamba.load(join(VAMBA_FIXTURES, 'tiny-a'), { backend: cpu });
    const opts = { frames: 16, shortestEdge: 16, longestEdge: 40 };
    using streamed = await encodeVideoFile(model, path, { ...opts, framesPerBatch: 2 });
    await using video = await openVideo(path);
    const frames = [];
    for await (const b of video.frames({ kind: 'uniform', numFrames: 16 }, { size: boundEdges(16, 40) }))
      frames.push(...b);
    assert.equal(frames.length, 6, 'every frame of a 6-frame video');
    const { pixelValues, grids: g } = model.processor.processVideos([frames]);
    using whole = model.encodeVideo(pixelValues, g[0]);
    assert.equal(streamed.tokens, whole.tokens);
    assert.equal(streamed.key.frames, '6');
    for (let i = 0; i < whole.kvs.length; i++)
      assert.ok(relErr(await streamed.kvs[i].v.data(), await whole.kvs[i].v.data()) < 1e-5);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
