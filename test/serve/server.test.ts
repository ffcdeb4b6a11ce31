import assert from 'node:assert/strict';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import OpenAI from 'openai';
import { UsageError } from '../../src/errors.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { encodePng } from '../../src/media/index.js';
import { needleTokenizerConfig, needleTokenizerJson } from '../../src/needle/tokenizer.js';
import { createServer, type LongshotServer, type ServeOptions } from '../../src/serve/index.js';
import { writeTinyQwen2VL, writeTinyVamba } from '../facade/tiny-models.js';
import { H264, makeVideo, pattern, scratch } from '../media/fixtures.js';

/**
 * The server over a real model: a tiny random-weight Qwen2-VL written by the test (its answers are
 * noise). The assertions are about the protocol, the token counts and the caching, not the words.
 */
const SOURCE = { width: 96, height: 64 };
const FPS = 10;
const MODEL = 'test/tiny';

interface Running {
  server: LongshotServer;
  url: string;
  client: OpenAI;
}

let modelDir: string;

async function start(root: string, opts: ServeOptions = {}): Promise<Running> {
  const model = await VideoLM.load(modelDir);
  const server = createServer(model, { modelId: MODEL, media: { allowedRoot: root }, ...opts });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
  return { server, url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 }) };
}

/** Tokens of the prompt text with the vision span left empty, counted with the tokenizer library itself. */
const tokenizer = new Tokenizer(needleTokenizerJson() as never, needleTokenizerConfig() as never);
function textTokens(
  question: string,
  system = 'You are a helpful assistant.',
  vision = '<|vision_start|><|vision_end|>',
): number {
  const prompt = `<|im_start|>system\n${system}<|im_end|>\n<|im_start|>user\n${vision}${question}<|im_end|>\n<|im_start|>assistant\n`;
  return tokenizer.encode(prompt, { add_special_tokens: false }).ids.length;
}

/** Qwen2-VL video tokens: frames in pairs, each side rounded to 28 px, 2×2 patches merged. */
const videoTokens = (frames: number, w: number, h: number) =>
  Math.ceil(frames / 2) * Math.round(w / 28) * Math.round(h / 28);

/** Four uniformly sampled frames: 2 temporal groups of 3×2 merged tokens. */
const FOUR = { sampling: 'uniform', frames: 4 };
const FOUR_TOKENS = videoTokens(4, SOURCE.width, SOURCE.height);

const videoPart = (url: string) => ({ type: 'video_url', video_url: { url } }) as never;
/** A request with longshot's sampling fields (sent by the openai client as extra body fields). */
const withFour = <T extends object>(body: T) => ({ ...body, ...FOUR }) as T;
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

describe('OpenAI-compatible server', () => {
  let root: string;
  let outside: string;
  let s: Running;
  before(async () => {
    modelDir = scratch();
    await writeTinyQwen2VL(modelDir);
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
    assert.deepEqual(health.queue, {
      running: 0,
      queued: 0,
      concurrency: 8,
      max_queue: 16,
    });
    // No budget: the ledger counts, admission does not limit.
    assert.equal(health.memory.budget_bytes, null);
    assert.equal(health.memory.free_bytes, null);
    assert.ok(health.memory.weights_bytes > 0);
  });

  it('answers a non-streaming request with usage, and reuses the encoded video for the next question', async () => {
    const question = 'Which word appeared?';
    const request = withFour({ model: MODEL, messages: ask('clip.mp4', question), max_tokens: 6 });
    const first = await s.client.chat.completions.create(request).withResponse();
    const c = first.data;
    assert.equal(first.response.headers.get('x-longshot-video-cache'), 'miss');
    assert.equal(c.object, 'chat.completion');
    assert.match(c.id, /^chatcmpl-/);
    assert.equal(c.model, MODEL);
    assert.equal(c.choices.length, 1);
    assert.equal(c.choices[0].message.role, 'assistant');
    assert.equal(typeof c.choices[0].message.content, 'string');
    const completion = c.usage!.completion_tokens;
    assert.ok(completion >= 1 && completion <= 6);
    assert.equal(c.choices[0].finish_reason, completion === 6 ? 'length' : 'stop');
    const prompt = textTokens(question) + FOUR_TOKENS;
    assert.deepEqual(c.usage, {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      prompt_tokens_details: { cached_tokens: 0, video_tokens: FOUR_TOKENS },
    });

    // Asked again: the cached encoding gives the same (greedy) answer as the fresh one.
    const second = await s.client.chat.completions
      .create({ ...request, messages: ask('./clip.mp4', question) })
      .withResponse();
    assert.equal(second.response.headers.get('x-longshot-video-cache'), 'hit');
    assert.equal(second.data.usage?.prompt_tokens_details?.cached_tokens, FOUR_TOKENS);
    assert.equal(second.data.choices[0].message.content, c.choices[0].message.content);
    assert.equal(second.data.usage?.completion_tokens, completion);

    // The same bytes as a data: URL are the same video (keyed by content), sampled the same way.
    const dataUrl = `data:video/mp4;base64,${readFileSync(join(root, 'clip.mp4')).toString('base64')}`;
    const third = await s.client.chat.completions
      .create({ ...request, messages: ask(dataUrl, question) })
      .withResponse();
    assert.equal(third.response.headers.get('x-longshot-video-cache'), 'hit');
    assert.equal(third.data.choices[0].message.content, c.choices[0].message.content);

    // Other sampling settings are another encoding, with its own token count.
    const fewer = await s.client.chat.completions
      .create({ ...request, frames: 2, max_tokens: 1 } as never)
      .withResponse();
    assert.equal(fewer.response.headers.get('x-longshot-video-cache'), 'miss');
    assert.equal(
      fewer.data.usage?.prompt_tokens,
      textTokens(question) + videoTokens(2, SOURCE.width, SOURCE.height),
    );
    assert.equal(fewer.data.usage?.completion_tokens, 1);
    const health = await (await fetch(`${s.url}/health`)).json();
    assert.equal(health.video_cache.entries, 2);
  });

  it('streams chat.completion.chunk events ending in [DONE], with usage on request', async () => {
    const request = withFour({
      model: MODEL,
      messages: ask('other.mp4', 'Describe the video.'),
      max_tokens: 8,
    });
    const whole = await s.client.chat.completions.create(request);
    const stream = await s.client.chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === MODEL));
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(text, whole.choices[0].message.content, 'streamed and whole answers differ');
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.deepEqual(
      finish.map((c) => c.choices[0].finish_reason),
      [whole.choices[0].finish_reason],
    );
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, {
      ...whole.usage,
      prompt_tokens_details: { cached_tokens: FOUR_TOKENS, video_tokens: FOUR_TOKENS },
    });
    assert.equal(whole.usage?.prompt_tokens, textTokens('Describe the video.') + FOUR_TOKENS);

    // On the wire: SSE data lines, the last one [DONE].
    const res = await post(s.url, { ...request, stream: true });
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = (await res.text()).split('\n\n').filter(Boolean);
    assert.ok(events.every((e) => e.startsWith('data: ')));
    assert.equal(events.at(-1), 'data: [DONE]');
  });

  it('stops generating as soon as a streaming client goes away', async () => {
    const ctrl = new AbortController();
    const res = await fetch(`${s.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // Far more tokens than the test could wait for: only stopping frees the model.
      body: JSON.stringify(
        withFour({ model: MODEL, messages: ask('clip.mp4'), stream: true, max_tokens: 100_000 }),
      ),
      signal: ctrl.signal,
    });
    assert.equal(res.status, 200);
    await res.body!.getReader().read();
    ctrl.abort();
    const started = Date.now();
    for (;;) {
      const health = await (await fetch(`${s.url}/health`)).json();
      if (health.queue.running === 0) break;
      assert.ok(Date.now() - started < 10_000, 'the generation went on after the client left');
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it('answers about an image given as a data: URL', async () => {
    const w = 32;
    const h = 32;
    const grey = pattern(5, w, h);
    const rgb = new Uint8Array(w * h * 3).map((_, i) => grey[Math.floor(i / 3)]);
    const url = `data:image/png;base64,${encodePng(w, h, rgb).toString('base64')}`;
    const c = await s.client.chat.completions.create({
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
      max_tokens: 3,
    });
    // 32×32 is below min_pixels (4·28²): smart_resize scales it up to 56×56, i.e. 2×2 merged tokens.
    const image = '<|vision_start|><|vision_end|>';
    assert.equal(c.usage?.prompt_tokens, textTokens('Which pattern?', 'Be brief.', image) + 4);
    assert.equal(c.usage?.prompt_tokens_details?.cached_tokens, 0);
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
        /sampling: expected "middle", "uniform", "fps" or "first-seconds"/,
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
      [
        { model: MODEL, messages: ask('notavideo.mp4') },
        /notavideo\.mp4/,
        'messages[0].content[0].video_url.url',
      ],
      [
        { model: MODEL, messages: ask('clip.mp4'), frames: 1 },
        /frames: expected an integer ≥ 2 \(frames go in pairs\)/,
        'frames',
      ],
      [
        { model: MODEL, messages: ask('clip.mp4'), fps: 2, sampling: 'uniform' },
        /fps: a rate needs "sampling": "fps"/,
        'fps',
      ],
      [
        { model: MODEL, messages: ask('clip.mp4'), clip_start: 1 },
        /clip_end: a clip needs both clip_start and clip_end/,
        'clip_end',
      ],
      [
        { model: MODEL, messages: ask('clip.mp4'), clip_start: 2, clip_end: 1 },
        /clip_end: must be after clip_start \(2 s\), got 1/,
        'clip_end',
      ],
      [
        { model: MODEL, messages: ask('clip.mp4'), clip_start: 50, clip_end: 60 },
        /the clip 50–60 s starts after the video ends/,
        'messages[0].content[0].video_url.url',
      ],
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
      assert.equal(json.error.param, param);
      assert.ok(!json.error.message.includes(root), `a server path leaked: ${json.error.message}`);
    }
    // The official client surfaces them as typed errors.
    await assert.rejects(
      s.client.chat.completions.create({ model: MODEL, messages: ask('clip.mp4'), temperature: 9 }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /temperature/.test(e.message),
    );
  });

  it('reduces the video’s tokens when a request asks (reduce), counting them in usage, and refuses one it cannot take', async () => {
    const question = 'Which word appeared?';
    const request = withFour({ model: MODEL, messages: ask('clip.mp4', question), max_tokens: 2 });
    // 2 groups of 3×2 merged tokens; uniform:0.5 keeps 3 of each group's 6.
    const res = await post(s.url, { ...request, reduce: 'uniform:0.5' });
    const json = await res.json();
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(res.headers.get('x-longshot-video-cache'), 'miss');
    assert.equal(json.usage.prompt_tokens_details.video_tokens, FOUR_TOKENS / 2);
    assert.equal(json.usage.prompt_tokens, textTokens(question) + FOUR_TOKENS / 2);
    for (const [reduce, message] of [
      ['transv', /transv is TimeViper’s .* valid only for timeviper models/],
      ['mambamia', /mambamia needs a MambaMia compressor trained for this model’s LLM/],
      ['uniform:3', /"uniform:3" is not METHOD or METHOD:KEEP/],
    ] as const) {
      const bad = await post(s.url, { ...request, reduce });
      const err = await bad.json();
      assert.equal(bad.status, 400, JSON.stringify(err));
      assert.match(err.error.message, message);
    }
  });

  it('names a data: URL as the client sent it, never by its temporary file, and caps long messages', async () => {
    const junk = `data:video/mp4;base64,${Buffer.from('not a video at all').toString('base64')}`;
    const res = await post(s.url, { model: MODEL, messages: ask(junk) });
    const json = await res.json();
    assert.equal(res.status, 400, JSON.stringify(json));
    assert.equal(json.error.param, 'messages[0].content[0].video_url.url');
    assert.match(json.error.message, /the data: URL/);
    assert.ok(!json.error.message.includes(tmpdir()), `a temporary path leaked: ${json.error.message}`);
    const long = 'm'.repeat(2000);
    const unknown = await (await post(s.url, { model: long, messages: ask('clip.mp4') })).json();
    assert.equal(unknown.error.param, 'model');
    assert.match(unknown.error.message, /…\(\d+ more characters\)$/);
    assert.equal(unknown.error.message.replace(/…\(\d+ more characters\)$/, '').length, 500);
  });

  it('refuses to start on an allowed root that does not exist', async () => {
    const model = await VideoLM.load(modelDir);
    try {
      assert.throws(
        () => createServer(model, { media: { allowedRoot: join(root, 'no-such-folder') } }),
        (e: unknown) => e instanceof UsageError && /no-such-folder: no such directory/.test(e.message),
      );
    } finally {
      model.dispose();
    }
  });

  it('refuses media outside the allowed root, remote URLs when disabled, and unknown models', async () => {
    const encodedBefore = (await (await fetch(`${s.url}/health`)).json()).video_cache.entries;
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
    const after = (await (await fetch(`${s.url}/health`)).json()).video_cache.entries;
    assert.equal(after, encodedBefore, 'a refused file was encoded');
    const res = await post(s.url, { model: 'gpt-4o', messages: ask('clip.mp4') });
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error.code, 'model_not_found');
    const nope = await fetch(`${s.url}/v1/nothing`);
    assert.equal(nope.status, 404);
    assert.equal((await nope.json()).error.code, 'not_found');
  });

  it('requires the API key when one is set', async () => {
    const locked = await start(root, { apiKey: 'sesame' });
    try {
      const denied = await fetch(`${locked.url}/v1/models`);
      assert.equal(denied.status, 401);
      assert.equal((await denied.json()).error.code, 'invalid_api_key');
      await assert.rejects(
        locked.client.models.list(),
        (e: unknown) => e instanceof OpenAI.AuthenticationError,
      );
      const client = new OpenAI({ baseURL: `${locked.url}/v1`, apiKey: 'sesame', maxRetries: 0 });
      assert.deepEqual(
        (await client.models.list()).data.map((m) => m.id),
        [MODEL],
      );
      assert.equal((await fetch(`${locked.url}/health`)).status, 200, 'health checks need no key');
    } finally {
      await locked.server.close();
    }
  });

  it('answers 429 when the queue is full, and 504 past the request timeout', async () => {
    const busy = await start(root, { concurrency: 1, maxQueue: 0 });
    try {
      const statuses = await Promise.all(
        Array.from({ length: 4 }, async () => {
          const res = await post(
            busy.url,
            withFour({ model: MODEL, messages: ask('clip.mp4'), max_tokens: 2 }),
          );
          if (res.status === 429) {
            assert.equal(res.headers.get('retry-after'), '1');
            assert.equal((await res.json()).error.code, 'queue_full');
          } else await res.body?.cancel();
          return res.status;
        }),
      );
      assert.equal(statuses.filter((x) => x === 200).length >= 1, true, String(statuses));
      assert.equal(statuses.filter((x) => x === 429).length >= 1, true, String(statuses));
      assert.equal(statuses.filter((x) => x !== 200 && x !== 429).length, 0, String(statuses));
    } finally {
      await busy.server.close();
    }

    const slow = await start(root, { timeoutMs: 5 });
    try {
      for (const stream of [false, true]) {
        const res = await post(slow.url, { model: MODEL, messages: ask('clip.mp4'), stream });
        assert.equal(res.status, 504);
        const json = await res.json();
        assert.equal(json.error.code, 'timeout');
        assert.match(json.error.message, /took longer than 5 ms/);
      }
    } finally {
      await slow.server.close();
    }

    // A stream that has started ends with an error event instead of [DONE]. (An image encodes in
    // milliseconds, so the time goes to generating far more tokens than the limit allows.)
    const midway = await start(root, { timeoutMs: 1500 });
    try {
      const grey = pattern(3, 32, 32);
      const rgb = new Uint8Array(32 * 32 * 3).map((_, i) => grey[Math.floor(i / 3)]);
      const image = `data:image/png;base64,${encodePng(32, 32, rgb).toString('base64')}`;
      const res = await post(midway.url, {
        model: MODEL,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image_url', image_url: { url: image } },
              { type: 'text', text: 'Describe.' },
            ],
          },
        ],
        stream: true,
        max_tokens: 100_000,
      });
      assert.equal(res.status, 200);
      const events = (await res.text()).split('\n\n').filter(Boolean);
      assert.ok(events.length > 2, 'the stream never started');
      assert.match(
        events.at(-1)!,
        /^data: \{"error":\{"message":"the request took longer than 1500 ms".*"code":"timeout"/,
      );
      assert.ok(!events.includes('data: [DONE]'));
    } finally {
      await midway.server.close();
    }
  });

  it('drops the least recently used encoded video past the cache limit', async () => {
    const small = await start(root, { cacheEntries: 1 });
    try {
      const cacheOf = async (file: string) => {
        const res = await post(small.url, withFour({ model: MODEL, messages: ask(file), max_tokens: 1 }));
        assert.equal(res.status, 200);
        await res.body?.cancel();
        return res.headers.get('x-longshot-video-cache');
      };
      assert.equal(await cacheOf('clip.mp4'), 'miss');
      assert.equal(await cacheOf('clip.mp4'), 'hit');
      assert.equal(await cacheOf('other.mp4'), 'miss');
      assert.equal(await cacheOf('clip.mp4'), 'miss');
      const health = await (await fetch(`${small.url}/health`)).json();
      assert.equal(health.video_cache.entries, 1);
    } finally {
      await small.server.close();
    }
  });
});

describe('OpenAI-compatible server over Vamba', () => {
  it('reuses the encoded cross-attention K/V when the same video is asked about again', async () => {
    const dir = scratch();
    await writeTinyVamba(dir);
    await makeVideo(join(dir, 'clip.mp4'), { ...SOURCE, frames: 20, fps: FPS, encode: H264 });
    const server = createServer(await VideoLM.load(dir), { modelId: MODEL, media: { allowedRoot: dir } });
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (server.app.server.address() as AddressInfo).port;
      const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'x', maxRetries: 0 });
      const request = withFour({
        model: MODEL,
        messages: ask('clip.mp4', 'Which word appeared?'),
        max_tokens: 4,
      });
      const first = await client.chat.completions.create(request).withResponse();
      const second = await client.chat.completions.create(request).withResponse();
      assert.deepEqual(
        [
          first.response.headers.get('x-longshot-video-cache'),
          second.response.headers.get('x-longshot-video-cache'),
        ],
        ['miss', 'hit'],
      );
      // Vamba's video is cross-attended, not in the text: 2 frame pairs of 4×4 tokens (frames raised to 256 px).
      const video = 2 * 4 * 4;
      assert.equal(first.data.usage?.prompt_tokens, textTokens('Which word appeared?') + video);
      assert.equal(second.data.usage?.prompt_tokens_details?.cached_tokens, video);
      assert.equal(second.data.choices[0].message.content, first.data.choices[0].message.content);

      // Vamba answers only about a video: a text-only request is the client's mistake (400, which the
      // openai client does not retry), streaming or not; so is a rate, which Vamba does not sample at.
      const textOnly = { model: MODEL, messages: [{ role: 'user', content: 'Hello?' }], max_tokens: 2 };
      for (const body of [textOnly, { ...textOnly, stream: true }]) {
        const res = await post(`http://127.0.0.1:${port}`, body);
        const json = await res.json();
        assert.equal(res.status, 400, JSON.stringify(json));
        assert.equal(json.error.param, 'messages');
        assert.match(json.error.message, /this model \(vamba\) answers questions about a video or an image/);
      }
      const rate = await post(`http://127.0.0.1:${port}`, { ...request, sampling: 'fps', frames: undefined });
      const json = await rate.json();
      assert.equal(rate.status, 400, JSON.stringify(json));
      assert.equal(json.error.param, 'sampling');
    } finally {
      await server.close();
    }
  });
});
