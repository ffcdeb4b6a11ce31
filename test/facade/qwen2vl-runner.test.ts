import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { VideoLM } from '../../src/api.js';
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
