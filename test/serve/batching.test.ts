/**
 * Continuous batching in the server (tiny Nemotron-H, CPU): concurrent requests decode together and answer
 * exactly what they answer one at a time; admission by estimated memory (413 for a request that can
 * never fit, counted as rejected); `/metrics` in the Prometheus text format.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { ChatTurn } from '../../src/facade/types.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { decodeTotals } from '../../src/generate/batch.js';
import { createServer, type LongshotServer } from '../../src/serve/index.js';
import { writeTinyNemotronH } from '../models/tiny-nemotron-h.js';
import { parseMetrics } from './metrics-text.js';

const MODEL = 'test/nemotron';
const QUESTIONS = [
  'what is the colour of the sea ?',
  'what is the colour of the grass ?',
  'is the sky blue ?',
  'what is the colour of the sky and the sea ?',
  'red ?',
  'what is it ?',
];
const turns = (q: string, i: number): ChatTurn[] =>
  i % 2
    ? [{ role: 'user', content: q }]
    : [
        { role: 'system', content: 'be brief /no_think' },
        { role: 'user', content: q },
      ];
const opts = (i: number) => ({
  max_tokens: 4 + i,
  ...(i === 3 ? { temperature: 0.8, seed: 7 } : {}),
});

describe('server: continuous batching, admission, /metrics', () => {
  let dir: string;
  let server: LongshotServer;
  let url: string;
  let client: OpenAI;
  let reference: VideoLM;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'longshot-batch-serve-'));
    writeTinyNemotronH(dir);
    server = createServer(await VideoLM.load(dir, { device: 'cpu' }), {
      modelId: MODEL,
      concurrency: 8,
      memoryBudgetBytes: 64 * 2 ** 20,
    });
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

  it('concurrent requests decode together and answer as they do one at a time', async () => {
    const alone: string[] = [];
    for (const [i, q] of QUESTIONS.entries()) {
      const o = opts(i);
      const r = await reference.chat(turns(q, i), {
        maxNewTokens: o.max_tokens,
        temperature: o.temperature,
        seed: o.seed,
      });
      alone.push((await r.result()).text);
    }
    const before = { ...decodeTotals };
    const together = await Promise.all(
      QUESTIONS.map(async (q, i) => {
        const r = await client.chat.completions.create({ model: MODEL, messages: turns(q, i), ...opts(i) });
        return r.choices[0].message.content;
      }),
    );
    assert.deepEqual(together, alone);
    const steps = decodeTotals.steps - before.steps;
    const tokens = decodeTotals.tokens - before.tokens;
    assert.ok(
      tokens > 0 && steps < tokens,
      `${steps} decode steps for ${tokens} tokens: nothing was batched`,
    );
  });

  it('refuses a request that can never fit the memory budget with 413, and /metrics counts it', async () => {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: turns('red ?', 1), max_tokens: 10_000_000 }),
    });
    assert.equal(res.status, 413);
    const body = await res.json();
    assert.equal(body.error.code, 'request_too_large');
    assert.match(body.error.message, /decode cache .* but the server has .*max_tokens/);
    const { samples } = parseMetrics(await (await fetch(`${url}/metrics`)).text());
    assert.ok((samples.get('longshot_requests_total{outcome="rejected"}') ?? 0) >= 1);
  });

  it('serves /metrics in the Prometheus text format', async () => {
    await client.chat.completions.create({ model: MODEL, messages: turns('red ?', 1), max_tokens: 3 });
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const { samples, types } = parseMetrics(await res.text());
    for (const [name, type] of [
      ['longshot_requests_running', 'gauge'],
      ['longshot_requests_queued', 'gauge'],
      ['longshot_decode_tokens_per_second', 'gauge'],
      ['longshot_completion_tokens_total', 'counter'],
      ['longshot_time_to_first_token_seconds', 'histogram'],
      ['longshot_device_memory_bytes', 'gauge'],
      ['longshot_memory_budget_bytes', 'gauge'],
      ['longshot_memory_free_bytes', 'gauge'],
      ['longshot_video_encodes_running', 'gauge'],
      ['longshot_video_encode_progress', 'gauge'],
    ])
      assert.equal(types.get(name), type, name);
    assert.equal(samples.get('longshot_requests_running'), 0);
    assert.equal(samples.get('longshot_memory_budget_bytes'), 64 * 2 ** 20);
    const count = samples.get('longshot_time_to_first_token_seconds_count')!;
    assert.equal(samples.get('longshot_time_to_first_token_seconds_bucket{le="+Inf"}'), count);
    assert.ok(count >= 1 && count <= (samples.get('longshot_requests_total{outcome="ok"}') ?? 0));
    const buckets = [...samples].filter(([k]) => k.startsWith('longshot_time_to_first_token_seconds_bucket'));
    for (let i = 1; i < buckets.length; i++)
      assert.ok(buckets[i][1] >= buckets[i - 1][1], 'buckets cumulate');
    assert.ok((samples.get('longshot_completion_tokens_total') ?? 0) >= 3);
    assert.ok((samples.get('longshot_device_memory_bytes{kind="current"}') ?? 0) > 0);
  });
});
