/**
 * Admission by the server's memory ledger (src/serve/ledger.ts): the budget less the weights, the encoded
 * videos (measured from their handles), the running requests' decode caches and questions, and the encodes in
 * progress.
 * First the ledger and the queue alone, then over HTTP with an engine that stands in for a model (chosen
 * sizes, answers that wait for the test), so that who waits, who is admitted and what is evicted are exact.
 * The estimates of real encodes against the bytes the CPU backend allocates: encode-plan.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Answer } from '../../src/facade/answer.js';
import type { ChatEngine, EncodeOptions, VideoHandle } from '../../src/facade/engine.js';
import type { ChatTurn, ModelInfo } from '../../src/facade/types.js';
import type { EncodePlan, QuestionBudget } from '../../src/models/family.js';
import '../../src/backends/index.js';
import { getBackend } from '../../src/runtime/device.js';
import type { ApiError } from '../../src/serve/errors.js';
import { createServer, type LongshotServer } from '../../src/serve/index.js';
import { MemoryLedger } from '../../src/serve/ledger.js';
import { RequestQueue } from '../../src/serve/queue.js';
import { VideoCache } from '../../src/serve/video-cache.js';
import { parseMetrics } from './metrics-text.js';

const MiB = 2 ** 20;

function handle(label: string, bytes: number): VideoHandle & { freed: boolean } {
  const h = {
    label,
    timestampsSec: [],
    decode: { kind: 'video' as const, requested: 2, decoded: 2, skipped: [], lostRanges: [] },
    tokens: 4,
    bytes,
    freed: false,
    get disposed() {
      return h.freed;
    },
    dispose() {
      h.freed = true;
    },
    [Symbol.dispose]() {
      h.freed = true;
    },
  };
  return h;
}

/** A ledger over a real video cache, as createServer wires them. */
function setup(budget: number, weights: number, maxQueue = 4, device?: () => number) {
  const cache = new VideoCache(8);
  const ledger = new MemoryLedger({
    budgetBytes: budget,
    videoBytes: () => cache.heldBytes,
    evictableBytes: () => cache.evictableBytes,
    evict: (bytes) => cache.evictUnused(bytes),
  });
  ledger.measure(device ?? (() => weights), weights);
  const queue = new RequestQueue(8, maxQueue, ledger);
  cache.onFree = () => queue.poke();
  return { cache, ledger, queue };
}

describe('MemoryLedger and RequestQueue', () => {
  it('adds up: budget − weights − videos − decode − question − encode = free, the device count a floor', async () => {
    let device = 100;
    const { cache, ledger, queue } = setup(1000, 100, 4, () => device);
    const lease = await cache.lease('a', async () => handle('a', 50));
    const a = await queue.acquire(undefined, { decode: 30, question: 70, encode: 200 });
    assert.deepEqual(ledger.snapshot, {
      budget_bytes: 1000,
      weights_bytes: 100,
      videos_bytes: 50,
      decode_reserved_bytes: 30,
      question_reserved_bytes: 70,
      encode_reserved_bytes: 200,
      free_bytes: 1000 - 100 - 50 - 30 - 70 - 200,
      unaccounted_bytes: 0,
    });
    a.encoded(); // the encode's reservation ends, its decode cache and question stay
    assert.equal(ledger.snapshot.encode_reserved_bytes, 0);
    assert.equal(ledger.snapshot.question_reserved_bytes, 70);
    assert.equal(ledger.freeBytes, 1000 - 100 - 50 - 30 - 70);
    // Memory no estimate covers: the device holds more than the sum, and admission counts it.
    device = 100 + 50 + 30 + 70 + 120;
    assert.equal(ledger.snapshot.unaccounted_bytes, 120);
    assert.equal(ledger.freeBytes, 1000 - 370);
    a.release();
    lease.release();
    assert.equal(ledger.snapshot.decode_reserved_bytes, 0);
    assert.equal(ledger.snapshot.question_reserved_bytes, 0);
  });

  it('keeps a request that does not fit waiting, and admits it when memory frees', async () => {
    const { queue, ledger } = setup(1000, 100);
    const a = await queue.acquire(undefined, { decode: 300, question: 0, encode: 400 });
    let admitted = false;
    const b = queue.acquire(undefined, { decode: 100, question: 0, encode: 300 }).then((x) => {
      admitted = true;
      return x;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(admitted, false);
    assert.equal(queue.stats.queued, 1);
    a.encoded(); // 400 freed: 1000 − 100 − 300 = 600 ≥ 400
    const rb = await b;
    assert.equal(admitted, true);
    assert.deepEqual([ledger.decodeBytes, ledger.encodeBytes], [400, 300]);
    a.release();
    rb.release();
    assert.deepEqual([ledger.decodeBytes, ledger.encodeBytes, queue.stats.running], [0, 0, 0]);
  });

  it('evicts unused cached videos, least recently used first and only as many as needed, to make room', async () => {
    const { cache, ledger, queue } = setup(1000, 100);
    const [old, newer, used] = [handle('old', 300), handle('newer', 300), handle('used', 200)];
    (await cache.lease('old', async () => old)).release();
    (await cache.lease('newer', async () => newer)).release();
    const held = await cache.lease('used', async () => used);
    assert.equal(ledger.freeBytes, 100);
    // 350 needs one video out: the least recently used unused one goes, the one in use never.
    const a = await queue.acquire(undefined, { decode: 50, question: 0, encode: 300 });
    assert.deepEqual([old.freed, newer.freed, used.freed], [true, false, false]);
    assert.equal(cache.size, 2);
    // More than evicting every unused video could free: nothing is evicted, the request waits.
    let admitted = false;
    const b = queue.acquire(undefined, { decode: 0, question: 0, encode: 700 }).then((x) => {
      admitted = true;
      return x;
    });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([admitted, newer.freed], [false, false]);
    // The running request ends: evicting the unused video is now enough (the one in use stays).
    a.release();
    const rb = await b;
    assert.deepEqual([admitted, newer.freed, used.freed, cache.size], [true, true, false, 1]);
    held.release();
    rb.release();
  });

  it('refuses a request that could not fit on an idle server with 413 naming the sizes and what to do', async () => {
    const { queue } = setup(10 * 2 ** 30, 4 * 2 ** 30);
    await assert.rejects(
      queue.acquire(undefined, { decode: 2 ** 30, question: 0, encode: 6 * 2 ** 30 }),
      (e: ApiError) =>
        e.status === 413 &&
        e.code === 'request_too_large' &&
        e.param === 'frames' &&
        /needs about 7\.0 GiB \(decode cache 1\.0 GiB, encoding its video 6\.0 GiB\) but the server has 6\.0 GiB for requests \(budget 10\.0 GiB less 4\.0 GiB of weights\)/.test(
          e.message,
        ) &&
        /fewer frames/.test(e.message) &&
        /--memory-budget/.test(e.message) &&
        /more memory/.test(e.message),
    );
    assert.equal(queue.stats.running, 0);
  });

  it('answers 429 with a retry delay when the line is full, naming the memory it needs and has', async () => {
    const { queue } = setup(1000, 100, 1);
    const a = await queue.acquire(undefined, { decode: 800, question: 0, encode: 0 });
    const b = queue.acquire(undefined, { decode: 200, question: 0, encode: 0 });
    await assert.rejects(
      queue.acquire(undefined, { decode: 50, question: 0, encode: 0 }),
      (e: ApiError) =>
        e.status === 429 &&
        e.code === 'queue_full' &&
        e.retryAfter === 1 &&
        /needs about .* of device memory and .* is free/.test(e.message),
    );
    assert.throws(
      () => queue.assertRoom(),
      (e: ApiError) => e.status === 429,
    );
    a.release();
    (await b).release();
    queue.assertRoom();
  });
});

/**
 * Chosen sizes: a video named `<n>.v` plans an encode of n MiB and holds n/2 MiB once encoded; a prompt is
 * `promptLength` tokens (null: the engine cannot count them).
 */
class SizedEngine implements ChatEngine {
  readonly info = {
    id: 'sized',
    architecture: 'test',
    device: 'cpu',
    videoRequired: true,
    decodeCache: { bytesPerToken: 1024, bytesPerSequence: 0 },
  } as unknown as ModelInfo;
  encodes: string[] = [];
  promptLength: number | null = 40;
  /** What each prompt was counted for: its turns' texts and its media. */
  counted: { texts: string[]; media?: string }[] = [];
  readonly handles = new Map<string, VideoHandle & { freed: boolean }>();
  /** When set, encodes wait for it. */
  encodeGate: Promise<void> | null = null;
  /** Answers wait for `finish()`. */
  #gate!: () => void;
  #open = new Promise<void>((r) => {
    this.#gate = r;
  });

  finish(): void {
    this.#gate();
    this.#open = new Promise<void>((r) => {
      this.#gate = r;
    });
  }

  promptTokens(turns: readonly ChatTurn[], media?: 'video' | 'image'): number | null {
    this.counted.push({ texts: turns.map((t) => t.content), media });
    return this.promptLength;
  }

  #mib = (path: unknown) => Number(/(\d+)\.v$/.exec(String(path))?.[1]);

  /** The questions the server priced over a planned video (they cost nothing here). */
  questions: QuestionBudget[] = [];

  async planEncode(path: unknown): Promise<EncodePlan> {
    const n = this.#mib(path);
    return {
      videoTokens: 4,
      stateBytes: (n / 2) * MiB,
      peakBytes: n * MiB,
      questionBytes: (q) => {
        this.questions.push(q);
        return 0;
      },
    };
  }

  async encodeVideo(path: unknown, _opts: EncodeOptions = {}): Promise<VideoHandle> {
    const name = String(path).split('/').at(-1)!;
    this.encodes.push(name);
    await this.encodeGate;
    const h = handle(name, (this.#mib(path) / 2) * MiB);
    this.handles.set(name, h);
    return h;
  }

  chat(): Answer {
    const open = this.#open;
    return new Answer(
      (async function* () {
        await open;
        yield 'ok';
        return {
          usage: { promptTokens: 1, videoTokens: 4, completionTokens: 1, totalTokens: 6 },
          finishReason: 'stop' as const,
        };
      })(),
    );
  }
}

describe('server: admission by the memory ledger', () => {
  let dir: string;
  let engine: SizedEngine;
  let server: LongshotServer;
  let url: string;
  // 64 MiB for requests beyond the weights (the CPU backend's live bytes when the server starts).
  const ROOM = 64 * MiB;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'longshot-ledger-'));
    for (const n of [8, 16, 40, 48, 100]) writeFileSync(join(dir, `${n}.v`), String(n));
    engine = new SizedEngine();
    const weights = (await getBackend('cpu')).memory().current;
    server = createServer(engine, {
      modelId: 'sized',
      media: { allowedRoot: dir },
      memoryBudgetBytes: weights + ROOM,
      maxQueue: 1,
      prefillPieceTokens: 0,
    });
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const ask = (video: string, maxTokens = 16) =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'sized',
        max_tokens: maxTokens,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'video_url', video_url: { url: video } },
              { type: 'text', text: 'what?' },
            ],
          },
        ],
      }),
    });
  const gauges = async () => parseMetrics(await (await fetch(`${url}/metrics`)).text()).samples;
  const until = async (what: () => Promise<boolean>) => {
    for (let i = 0; i < 500 && !(await what()); i++) await new Promise((r) => setTimeout(r, 5));
  };

  it('queues a new video that does not fit beside a running one, admits it when that ends, and evicts the unused one for the next', async () => {
    // 40 MiB encode (20 MiB kept afterwards) + a decode cache of about 0.1 MiB: runs.
    const first = ask('40.v');
    await until(async () => (await gauges()).get('longshot_requests_running') === 1);
    let m = await gauges();
    assert.equal(m.get('longshot_memory_videos_bytes'), 20 * MiB);
    assert.equal(m.get('longshot_memory_encode_reserved_bytes'), 0);
    // The decode cache for the prompt's tokens as the engine counted them (40) and max_tokens (16).
    const decode = m.get('longshot_memory_decode_reserved_bytes')!;
    assert.equal(decode, 1024 * (40 + 16));
    assert.deepEqual(engine.counted, [{ texts: ['what?'], media: 'video' }]);
    // The question over its video priced for the same tokens and its turns (whose form may decide its cost).
    assert.deepEqual(engine.questions, [
      { textTokens: 40, newTokens: 16, turns: [{ role: 'user', content: 'what?' }] },
    ]);
    assert.equal(
      m.get('longshot_memory_free_bytes'),
      m.get('longshot_memory_budget_bytes')! - m.get('longshot_memory_weights_bytes')! - 20 * MiB - decode,
    );
    // 48 MiB more does not fit beside it (64 − 20 − decode < 48), and the kept video is in use: it waits.
    const second = ask('48.v');
    await until(async () => (await gauges()).get('longshot_requests_queued') === 1);
    assert.deepEqual(engine.encodes, ['40.v']);
    // The line (1) is full: 429 at once, with Retry-After.
    const third = await ask('8.v');
    assert.equal(third.status, 429);
    assert.equal(third.headers.get('retry-after'), '1');
    assert.equal((await third.json()).error.code, 'queue_full');
    // The first answer ends: its video is no longer used, evicting it makes room, the second is admitted.
    engine.finish();
    assert.equal((await first).status, 200);
    await until(async () => engine.encodes.length === 2);
    assert.deepEqual(engine.encodes, ['40.v', '48.v']);
    assert.equal(engine.handles.get('40.v')!.freed, true);
    m = await gauges();
    assert.equal(m.get('longshot_memory_videos_bytes'), 24 * MiB);
    engine.finish();
    const r2 = await second;
    assert.equal(r2.status, 200);
    assert.equal(r2.headers.get('x-longshot-video-cache'), 'miss');
    // Asked again: cached, nothing encoded, nothing reserved for an encode.
    const again = ask('48.v');
    await until(async () => (await gauges()).get('longshot_requests_running') === 1);
    assert.equal((await gauges()).get('longshot_memory_encode_reserved_bytes'), 0);
    engine.finish();
    assert.equal((await again).headers.get('x-longshot-video-cache'), 'hit');
    assert.equal(engine.encodes.length, 2);
  });

  it('a request gone while its video is encoded frees its reservations and lets go of the video', async () => {
    const unused = server.cache.evictableBytes; // the videos the test before left
    let open!: () => void;
    engine.encodeGate = new Promise<void>((r) => {
      open = r;
    });
    const client = new AbortController();
    const gone = fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'sized',
        messages: [{ role: 'user', content: [{ type: 'video_url', video_url: { url: '16.v' } }] }],
      }),
      signal: client.signal,
    }).catch(() => null);
    await until(async () => engine.encodes.includes('16.v'));
    assert.equal((await gauges()).get('longshot_memory_encode_reserved_bytes'), 16 * MiB);
    client.abort();
    await gone;
    await until(async () => (await gauges()).get('longshot_requests_running') === 0);
    engine.encodeGate = null;
    open();
    // The encode ends after its request: the video is kept, used by nobody, so it can be evicted.
    await until(async () => server.cache.evictableBytes === unused + 8 * MiB);
    assert.equal(server.cache.evictableBytes, unused + 8 * MiB);
    const m = await gauges();
    assert.deepEqual(
      [m.get('longshot_memory_decode_reserved_bytes'), m.get('longshot_memory_encode_reserved_bytes')],
      [0, 0],
    );
  });

  it('estimates the prompt’s tokens from its characters where the engine cannot count them', async () => {
    engine.promptLength = null;
    try {
      const asked = ask('8.v', 10);
      await until(async () => (await gauges()).get('longshot_requests_running') === 1);
      // 'what?': ⌈5 / 2⌉ tokens and 64 for the chat template, and max_tokens.
      assert.equal((await gauges()).get('longshot_memory_decode_reserved_bytes'), 1024 * (3 + 64 + 10));
      engine.finish();
      assert.equal((await asked).status, 200);
    } finally {
      engine.promptLength = 40;
    }
  });

  it('refuses a video that could never fit with 413 naming the sizes, before anything is encoded', async () => {
    const res = await ask('100.v');
    assert.equal(res.status, 413);
    const body = await res.json();
    assert.equal(body.error.code, 'request_too_large');
    assert.equal(body.error.param, 'frames');
    assert.match(body.error.message, /encoding its video 100 MiB\) but the server has 64 MiB for requests/);
    assert.equal(engine.encodes.includes('100.v'), false);
    const m = await gauges();
    assert.ok((m.get('longshot_requests_total{outcome="rejected"}') ?? 0) >= 2);
    const health = await (await fetch(`${url}/health`)).json();
    assert.equal(health.memory.budget_bytes, m.get('longshot_memory_budget_bytes'));
    assert.equal(health.memory.encode_reserved_bytes, 0);
  });
});
