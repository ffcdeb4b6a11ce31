import assert from 'node:assert/strict';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { VideoLM } from '../../src/api.js';
import { encodePng } from '../../src/media/index.js';
import { createServer, type LongshotServer, type ServeOptions } from '../../src/serve/index.js';
import { TestRunner, TOKENS_PER_FRAME } from '../facade/test-runner.js';
import { H264, makeVideo, pattern, scratch } from '../media/fixtures.js';

const SOURCE = { width: 96, height: 64 };
const FPS = 10;
const MODEL = 'test/tiny';

interface Running {
  server: LongshotServer;
  runner: TestRunner;
  url: string;
  client: OpenAI;
}

async function start(root: string, opts: ServeOptions = {}, pieceDelayMs = 0): Promise<Running> {
  const runner = new TestRunner(SOURCE, pieceDelayMs);
  const server = createServer(VideoLM.fromRunner(runner), { media: { allowedRoot: root }, ...opts });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
  return {
    server,
    runner,
    url,
    client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 }),
  };
}

const videoPart = (url: string) => ({ type: 'video_url', video_url: { url } }) as never;
const ask = (url: string, text = 'What happens in this video?') => [
  { role: 'user' as const, content: [videoPart(url), { type: 'text' as const, text }] },
];

function post(base: string, body: unknown) {
  return fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Words of the test runner's answer, which is what completion_tokens must count. */
const words = (s: string) => s.split(' ').length;

describe('OpenAI-compatible server', () => {
  let root: string;
  let outside: string;
  let s: Running;
  before(async () => {
    root = scratch();
    outside = scratch();
    await makeVideo(join(root, 'clip.mp4'), { ...SOURCE, frames: 30, fps: FPS, encode: H264 });
    await makeVideo(join(root, 'other.mp4'), { ...SOURCE, frames: 20, fps: FPS, encode: H264 });
    await makeVideo(join(outside, 'secret.mp4'), { ...SOURCE, frames: 4, fps: FPS, encode: H264 });
    symlinkSync(join(outside, 'secret.mp4'), join(root, 'link.mp4'));
    writeFileSync(join(root, 'notavideo.mp4'), 'this is text, not a video');
    s = await start(root);
  });
  after(() => s.server.close());

  it('lists the model and reports health', async () => {
    const models = await s.client.models.list();
    assert.deepEqual(
      models.data.map((m) => [m.id, m.object]),
      [[MODEL, 'model']],
    );
    const health = await (await fetch(`${s.url}/health`)).json();
    assert.equal(health.status, 'ok');
    assert.equal(health.model, MODEL);
    assert.deepEqual(health.queue, { running: 0, queued: 0, concurrency: 1, max_queue: 16 });
  });

  it('answers a non-streaming request with usage, and reuses the encoded video for the next question', async () => {
    const first = await s.client.chat.completions
      .create({ model: MODEL, messages: ask('clip.mp4', 'What happens here?') })
      .withResponse();
    const c = first.data;
    assert.equal(first.response.headers.get('x-longshot-video-cache'), 'miss');
    assert.equal(c.object, 'chat.completion');
    assert.match(c.id, /^chatcmpl-/);
    assert.equal(c.model, MODEL);
    assert.equal(c.choices.length, 1);
    assert.equal(c.choices[0].message.role, 'assistant');
    assert.equal(c.choices[0].finish_reason, 'stop');
    const frames = s.runner.encoded[0].frameIndices;
    assert.equal(frames.length, 6); // the model's default
    assert.equal(c.choices[0].message.content, `I saw 6 frames: ${frames.join(' ')} .`);
    const videoTokens = 6 * TOKENS_PER_FRAME;
    assert.deepEqual(c.usage, {
      prompt_tokens: 3 + videoTokens,
      completion_tokens: words(c.choices[0].message.content!),
      total_tokens: 3 + videoTokens + words(c.choices[0].message.content!),
      prompt_tokens_details: { cached_tokens: 0 },
    });

    const second = await s.client.chat.completions
      .create({ model: MODEL, messages: ask('./clip.mp4', 'And at the end?') })
      .withResponse();
    assert.equal(second.response.headers.get('x-longshot-video-cache'), 'hit');
    assert.equal(second.data.usage?.prompt_tokens_details?.cached_tokens, videoTokens);
    assert.equal(s.runner.encoded.length, 1, 'the video was encoded again');

    // The same bytes as a data: URL are the same video (keyed by content), sampled the same way.
    const dataUrl = `data:video/mp4;base64,${readFileSync(join(root, 'clip.mp4')).toString('base64')}`;
    const third = await s.client.chat.completions
      .create({ model: MODEL, messages: ask(dataUrl) })
      .withResponse();
    assert.equal(third.response.headers.get('x-longshot-video-cache'), 'hit');
    assert.equal(s.runner.encoded.length, 1);

    // Other sampling settings are another encoding.
    const fewer = await s.client.chat.completions.create({
      model: MODEL,
      messages: ask('clip.mp4'),
      frames: 3,
      max_tokens: 2,
    } as never);
    assert.equal(s.runner.encoded.length, 2);
    assert.equal(s.runner.encoded[1].frameIndices.length, 3);
    assert.equal(fewer.choices[0].message.content, 'I saw');
    assert.equal(fewer.choices[0].finish_reason, 'length');
    assert.equal(fewer.usage?.completion_tokens, 2);
  });

  it('streams chat.completion.chunk events ending in [DONE], with usage on request', async () => {
    const stream = await s.client.chat.completions.create({
      model: MODEL,
      messages: ask('other.mp4'),
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === MODEL));
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    const frames = s.runner.encoded.at(-1)!.frameIndices;
    assert.equal(text, `I saw 6 frames: ${frames.join(' ')} .`);
    assert.ok(chunks.filter((c) => c.choices[0]?.delta.content).length > 5, 'the answer came in one piece');
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.deepEqual(
      finish.map((c) => c.choices[0].finish_reason),
      ['stop'],
    );
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage?.completion_tokens, words(text));
    assert.equal(last.usage?.prompt_tokens, 5 + 6 * TOKENS_PER_FRAME);

    // On the wire: SSE data lines, the last one [DONE].
    const res = await post(s.url, { model: MODEL, messages: ask('other.mp4'), stream: true });
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = (await res.text()).split('\n\n').filter(Boolean);
    assert.ok(events.every((e) => e.startsWith('data: ')));
    assert.equal(events.at(-1), 'data: [DONE]');
  });

  it('answers about an image given as a data: URL', async () => {
    const w = 32;
    const h = 32;
    const grey = pattern(5, w, h);
    const rgb = new Uint8Array(w * h * 3).map((_, i) => grey[Math.floor(i / 3)]);
    const url = `data:image/png;base64,${encodePng(w, h, rgb).toString('base64')}`;
    const runner = new TestRunner({ width: w, height: h });
    const server = createServer(VideoLM.fromRunner(runner));
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (server.app.server.address() as AddressInfo).port;
      const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'x', maxRetries: 0 });
      const c = await client.chat.completions.create({
        model: MODEL,
        messages: [
          { role: 'system', content: 'Be brief.' },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Which pattern?' },
              { type: 'image_url', image_url: { url } },
            ],
          },
        ],
      });
      assert.equal(c.choices[0].message.content, 'I saw 1 frames: 5 .');
      assert.equal(c.usage?.prompt_tokens, 4 + TOKENS_PER_FRAME);
    } finally {
      await server.close();
    }
  });

  it('rejects malformed requests with OpenAI-style 400s that name the field', async () => {
    const cases: Array<[unknown, RegExp, string | null]> = [
      ['{not json', /JSON/i, null],
      [{ model: MODEL }, /messages: expected a non-empty array/, 'messages'],
      [{ model: MODEL, messages: [] }, /messages: expected a non-empty array/, 'messages'],
      [{ messages: ask('clip.mp4') }, /model: expected a model id string/, 'model'],
      [
        { model: MODEL, messages: [{ role: 'user', content: [{ type: 'audio_url', audio_url: {} }] }] },
        /messages\[0\]\.content\[0\]\.type: expected "text", "image_url" or "video_url", got "audio_url"/,
        'messages[0].content[0].type',
      ],
      [
        { model: MODEL, messages: [{ role: 'user', content: [{ type: 'video_url', video_url: {} }] }] },
        /messages\[0\]\.content\[0\]\.video_url\.url: expected a URL or path string/,
        'messages[0].content[0].video_url.url',
      ],
      [
        { model: MODEL, messages: [{ role: 'robot', content: 'hi' }] },
        /messages\[0\]\.role/,
        'messages[0].role',
      ],
      [
        { model: MODEL, messages: ask('clip.mp4'), temperature: 5 },
        /temperature: expected a number from 0 to 2/,
        'temperature',
      ],
      [
        { model: MODEL, messages: ask('clip.mp4'), max_tokens: 0 },
        /max_tokens: expected a positive integer/,
        'max_tokens',
      ],
      [{ model: MODEL, messages: ask('clip.mp4'), n: 2 }, /n: expected the integer 1/, 'n'],
      [
        { model: MODEL, messages: ask('clip.mp4'), sampling: 'random' },
        /sampling: expected "middle", "uniform" or "fps"/,
        'sampling',
      ],
      [
        {
          model: MODEL,
          messages: [{ role: 'user', content: [videoPart('clip.mp4'), videoPart('other.mp4')] }],
        },
        /one video or image per request/,
        'messages[0].content[1]',
      ],
      [
        { model: MODEL, messages: [...ask('clip.mp4'), { role: 'assistant', content: 'ok' }] },
        /last message must be from the user/,
        'messages[1].role',
      ],
      [
        { model: MODEL, messages: ask('missing.mp4') },
        /no such file under the media root: missing\.mp4/,
        'messages[0].content[0].video_url.url',
      ],
      [{ model: MODEL, messages: ask('notavideo.mp4') }, /notavideo\.mp4/, null],
    ];
    for (const [body, message, param] of cases) {
      const res = await post(s.url, body);
      const json = await res.json();
      assert.equal(
        res.status,
        400,
        `${JSON.stringify(body).slice(0, 80)} → ${res.status} ${JSON.stringify(json)}`,
      );
      assert.equal(json.error.type, 'invalid_request_error');
      assert.match(json.error.message, message);
      if (param) assert.equal(json.error.param, param);
    }
    // The official client surfaces them as typed errors.
    await assert.rejects(
      s.client.chat.completions.create({ model: MODEL, messages: ask('clip.mp4'), temperature: 9 }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /temperature/.test(e.message),
    );
  });

  it('refuses media outside the allowed root, remote URLs when disabled, and unknown models', async () => {
    for (const url of [
      '../secret.mp4',
      join(outside, 'secret.mp4'),
      `file://${join(outside, 'secret.mp4')}`,
      'link.mp4',
      'https://example.com/v.mp4',
    ]) {
      const res = await post(s.url, { model: MODEL, messages: ask(url) });
      const json = await res.json();
      assert.equal(res.status, 403, `${url}: ${JSON.stringify(json)}`);
      assert.equal(json.error.code, 'media_not_allowed');
    }
    assert.ok(
      !s.runner.encoded.some((v) => v.frameIndices.length === 4),
      'a file outside the root was decoded',
    );
    const res = await post(s.url, { model: 'gpt-4o', messages: ask('clip.mp4') });
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error.code, 'model_not_found');
    const nope = await fetch(`${s.url}/v1/nothing`);
    assert.equal(nope.status, 404);
    assert.equal((await nope.json()).error.code, 'not_found');
  });

  it('answers 429 when the queue is full, and times requests out', async () => {
    const busy = await start(root, { concurrency: 1, maxQueue: 0 }, 30);
    try {
      const first = post(busy.url, { model: MODEL, messages: ask('clip.mp4') });
      await new Promise((r) => setTimeout(r, 100)); // the first is running
      const second = await post(busy.url, { model: MODEL, messages: ask('clip.mp4') });
      assert.equal(second.status, 429);
      assert.equal(second.headers.get('retry-after'), '1');
      assert.equal((await second.json()).error.code, 'queue_full');
      assert.equal((await first).status, 200);
    } finally {
      await busy.server.close();
    }

    const slow = await start(root, { timeoutMs: 300 }, 100);
    try {
      const res = await post(slow.url, { model: MODEL, messages: ask('clip.mp4') });
      assert.equal(res.status, 504);
      assert.equal((await res.json()).error.code, 'timeout');
      const streamed = await post(slow.url, { model: MODEL, messages: ask('clip.mp4'), stream: true });
      const events = (await streamed.text()).split('\n\n').filter(Boolean);
      assert.match(events.at(-1)!, /"code":"timeout"/);
      assert.ok(!events.includes('data: [DONE]'));
    } finally {
      await slow.server.close();
    }
  });

  it('drops the least recently used encoded video past the cache limit, freeing its memory', async () => {
    const small = await start(root, { cacheEntries: 1 });
    try {
      const cacheOf = async (file: string) =>
        (await post(small.url, { model: MODEL, messages: ask(file) })).headers.get('x-longshot-video-cache');
      assert.equal(await cacheOf('clip.mp4'), 'miss');
      assert.equal(await cacheOf('clip.mp4'), 'hit');
      assert.equal(await cacheOf('other.mp4'), 'miss');
      assert.ok(small.runner.encoded[0].disposed, 'the evicted video was not freed');
      assert.ok(!small.runner.encoded[1].disposed);
      assert.equal(await cacheOf('clip.mp4'), 'miss');
      assert.equal(small.runner.encoded.length, 3);
    } finally {
      await small.server.close();
    }
  });
});
