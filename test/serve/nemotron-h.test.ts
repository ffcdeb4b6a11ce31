/** The server over a text model (a tiny Nemotron-H): text-only chat completions, streamed or not; videos refused. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { ChatTurn } from '../../src/facade/types.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { getBackend } from '../../src/runtime/device.js';
import { createServer, type LongshotServer } from '../../src/serve/index.js';
import { writeTinyNemotronH } from '../models/tiny-nemotron-h.js';
import { decodeBytes } from './tiny-runners.js';

const MODEL = 'test/nemotron';
const TURNS: ChatTurn[] = [
  { role: 'system', content: 'be brief /no_think' },
  { role: 'user', content: 'what is the colour of the sea ?' },
];

describe('OpenAI-compatible server over Nemotron-H', () => {
  let dir: string;
  let server: LongshotServer;
  let url: string;
  let client: OpenAI;
  let reference: VideoLM;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'longshot-nemotron-serve-'));
    writeTinyNemotronH(dir);
    server = createServer(await VideoLM.load(dir, { device: 'cpu' }), { modelId: MODEL });
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    reference = await VideoLM.load(dir, { device: 'cpu' });
  });
  after(async () => {
    await server?.close();
    reference?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers a text-only request as VideoLM.chat does, with its usage', async () => {
    const want = await reference.chat(TURNS, { maxNewTokens: 6 }).result();
    const got = await client.chat.completions.create({ model: MODEL, messages: TURNS, max_tokens: 6 });
    assert.equal(got.choices[0].message.content, want.text);
    assert.equal(got.choices[0].finish_reason, want.finishReason);
    assert.equal(got.usage?.prompt_tokens, want.usage.promptTokens);
    assert.equal(got.usage?.completion_tokens, want.usage.completionTokens);
    // The tokens the server's admission counts for the prompt before it runs are the ones it ran.
    assert.equal(reference.promptTokens(TURNS), want.usage.promptTokens);
    // Asked again (the system prompt's cache is kept now): the same answer.
    const again = await client.chat.completions.create({ model: MODEL, messages: TURNS, max_tokens: 6 });
    assert.equal(again.choices[0].message.content, want.text);
  });

  it('reserves a decode cache that covers the CPU backend’s peak of a question (its prefill included), ≤ 3×', async () => {
    const backend = await getBackend('cpu');
    for (const words of [1, 60, 400]) {
      const turns: ChatTurn[] = [
        { role: 'user', content: `what is the colour of the sea ?${' sea'.repeat(words)}` },
      ];
      const before = backend.memory().current;
      backend.resetPeak();
      const { usage } = await reference.chat(turns, { maxNewTokens: 6 }).result();
      const peak = backend.memory().peak - before;
      const reserved = decodeBytes(reference, usage.promptTokens, 6);
      const what = `${usage.promptTokens} prompt tokens: reserved ${reserved} B, measured ${peak} B`;
      assert.ok(reserved >= peak, `${what}: below the measured peak`);
      assert.ok(reserved <= 3 * peak, `${what}: over 3× the measured peak`);
    }
  });

  it('streams a text-only answer', async () => {
    const whole = await reference.chat(TURNS, { maxNewTokens: 6 }).result();
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: TURNS,
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, whole.text);
    assert.equal(usage?.completion_tokens, whole.usage.completionTokens);
  });

  it('refuses a video part with a 400 that says it is a text model', async () => {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: MODEL,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'video_url', video_url: { url: 'clip.mp4' } },
              { type: 'text', text: 'what?' },
            ],
          },
        ],
      }),
    });
    const json = await res.json();
    assert.equal(res.status, 400, JSON.stringify(json));
    assert.equal(json.error.param, 'messages[0].content[0].video_url.url');
    assert.match(json.error.message, /this model \(nemotron_h\) is a text model/);
  });
});
