import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { OutOfMemoryError } from '../../src/errors.js';
import type { ChatTurn } from '../../src/facade/types.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { qwen2vl } from '../../src/models/qwen2vl/family.js';
import { Qwen2VL, type Qwen2VLPrefix } from '../../src/models/qwen2vl/model.js';
import { Qwen2VLProcessor, type RgbImage } from '../../src/models/qwen2vl/processor.js';
import { Qwen2VLRunner } from '../../src/models/qwen2vl/runner.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { rng } from '../helpers.js';
import { H264, makeVideo, scratch } from '../media/fixtures.js';
import { writeTinyQwen2VL } from './tiny-models.js';

test('Qwen2-VL encodes a video once: later questions reuse its vision tokens and answer as a fresh encode', async () => {
  const dir = scratch();
  await writeTinyQwen2VL(dir);
  const video = await makeVideo(join(dir, 'clip.mp4'), {
    width: 96,
    height: 64,
    frames: 12,
    fps: 6,
    encode: H264,
  });
  using model = await VideoLM.load(dir);
  const opts = { frames: 4, sampling: 'uniform' as const };
  const handle = await model.encodeVideo(video, opts);
  const greedy = { maxNewTokens: 5, temperature: 0 };
  const cached = [
    await model.ask(handle, 'What happens?', greedy).result(),
    await model.ask(handle, 'What happens?', greedy).result(),
  ];
  // Asking about the file encodes it anew for this one question (the equality of prefill from encoded tokens
  // and from pixels is checked against transformers in test/models/long-video.test.ts).
  const fresh = await model.ask(video, 'What happens?', { ...opts, ...greedy }).result();
  assert.equal(cached[0].text, fresh.text);
  assert.equal(cached[1].text, fresh.text);
  assert.deepEqual(cached[0].usage, fresh.usage);
  assert.ok(handle.tokens > 0 && cached[0].usage.videoTokens === handle.tokens);
  handle.dispose();
});

test('Qwen2-VL streams a video through the vision tower 16 frames at a time, equal to encoding it whole', async () => {
  const dir = scratch();
  await writeTinyQwen2VL(dir);
  const processor = await Qwen2VLProcessor.load(dir);
  using model = await Qwen2VL.load(dir);
  const runner = await tinyRunner(dir, model, processor);
  // 21 frames arriving in uneven batches: one full batch of 16, then 5 (an odd last group, padded).
  const r = rng(5);
  const frames: RgbImage[] = Array.from({ length: 21 }, () => ({
    width: 56,
    height: 56,
    data: Uint8Array.from({ length: 56 * 56 * 3 }, () => Math.floor(r() * 256)),
  }));
  async function* batches() {
    for (const n of [7, 3, 9, 2]) yield frames.splice(0, n);
  }
  const whole = processor.processVideos([frames.slice()]);
  using expected = model.encodeVision(whole.pixelValues, whole.grids);
  const video = (await runner.encode(batches(), {
    kind: 'video',
    timestampsSec: Array(21).fill(0),
    sampling: SAMPLING,
  })) as unknown as {
    embeds: Tensor;
    tokens: number;
    dispose(): void;
  };
  assert.deepEqual(video.embeds.shape, expected.shape);
  assert.equal(video.tokens, expected.shape[0]);
  assert.deepEqual(await video.embeds.toArray(), await expected.toArray());
  video.dispose();
});

test('Qwen2-VL refuses a video whose prefill cannot fit before encoding any of it', async () => {
  const dir = scratch();
  await writeTinyQwen2VL(dir);
  const processor = await Qwen2VLProcessor.load(dir);
  using model = await Qwen2VL.load(dir);
  const runner = await tinyRunner(dir, model, processor);
  const frame = { width: 56, height: 56, data: new Uint8Array(56 * 56 * 3) };
  async function* two() {
    yield [frame, frame];
  }
  // Twenty million sampled frames: 4 tokens per 2-frame group → 40 M tokens of KV cache and activations.
  const before = model.backend.memory().current;
  await assert.rejects(
    runner.encode(two(), { kind: 'video', timestampsSec: new Array(20_000_000), sampling: SAMPLING }),
    (e: Error) =>
      e instanceof OutOfMemoryError &&
      /Qwen2-VL on 20000000 frames \(40000000 video tokens\) needs about/.test(e.message),
  );
  assert.equal(model.backend.memory().current, before, 'nothing is left allocated');
});

/** How the frames were sampled (the runner only reports it). */
const SAMPLING = qwen2vl.video.defaults;

async function tinyRunner(dir: string, model: Qwen2VL, processor: Qwen2VLProcessor): Promise<Qwen2VLRunner> {
  const info = {
    id: dir,
    dir,
    architecture: 'qwen2_vl' as const,
    parameters: 0,
    weightBytes: 0,
    dtype: 'f32',
  };
  return new Qwen2VLRunner(
    { ...info, device: 'cpu', layers: 2, hiddenSize: 0 },
    model,
    processor,
    await Tokenizer.fromDir(dir),
    'tiny',
  );
}

test('Qwen2-VL prefills the default prompt up to the end of the video once; questions continue from it', async () => {
  const dir = scratch();
  await writeTinyQwen2VL(dir);
  const processor = await Qwen2VLProcessor.load(dir);
  using model = await Qwen2VL.load(dir);
  const runner = await tinyRunner(dir, model, processor);
  const r = rng(9);
  const frames: RgbImage[] = Array.from({ length: 4 }, () => ({
    width: 56,
    height: 56,
    data: Uint8Array.from({ length: 56 * 56 * 3 }, () => Math.floor(r() * 256)),
  }));
  async function* batches() {
    yield frames;
  }
  const video = (await runner.encode(batches(), {
    kind: 'video',
    timestampsSec: Array(4).fill(0),
    sampling: SAMPLING,
  })) as unknown as {
    embeds: Tensor;
    prefix?: Qwen2VLPrefix;
    bytes: number;
    dispose(): void;
  };
  const prefix = video.prefix!;
  assert.equal(video.bytes, video.embeds.bytes + prefix.bytes);
  const used: (Qwen2VLPrefix | null)[] = [];
  const session = model.session.bind(model);
  model.session = (o) => {
    used.push(o?.prefix ?? null);
    return session(o);
  };
  const ask = async (turns: ChatTurn[]) => {
    let text = '';
    for await (const piece of runner.generate(turns, video as never, { maxNewTokens: 6, temperature: 0 }))
      text += piece;
    return text;
  };
  const question: ChatTurn[] = [{ role: 'user', content: 'What happens?' }];
  const fromPrefix = await ask(question);
  video.prefix = undefined; // the same prompt, prefilled whole
  const whole = await ask(question);
  video.prefix = prefix;
  assert.equal(fromPrefix, whole);
  await ask([{ role: 'system', content: 'Be brief.' }, ...question]); // another system prompt: no prefix
  assert.deepEqual(used, [prefix, null, null]);
  video.dispose();
});
