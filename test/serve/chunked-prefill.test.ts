/**
 * The server's chunked prefill and encode gauges, with an engine that stands in for a model: a new video's
 * encode gets `pieces` (ServeOptions.prefillPieceTokens tokens, paused by `decodeTurn`; none with 0), and while
 * it runs /metrics shows it (videos being encoded, their frames done and sampled, the progress fraction).
 * The real models' pieces equal their whole prefill (test/facade/chunked-prefill.test.ts); decodes flowing
 * during an encode over HTTP: test/bench/serve-load.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Answer } from '../../src/facade/answer.js';
import type { ChatEngine, EncodeOptions, VideoHandle } from '../../src/facade/engine.js';
import type { ModelInfo } from '../../src/facade/types.js';
import { createServer, type LongshotServer } from '../../src/serve/index.js';
import { parseMetrics } from './metrics-text.js';

/** An engine whose encode reports 4 of 10 frames, then waits for `release`. */
class GatedEngine implements ChatEngine {
  readonly info = {
    id: 'gated',
    architecture: 'test',
    device: 'cpu',
    videoRequired: true,
  } as unknown as ModelInfo;
  seen: EncodeOptions[] = [];
  release!: () => void;
  #started!: () => void;
  readonly started = new Promise<void>((resolve) => {
    this.#started = resolve;
  });

  async encodeVideo(_input: unknown, opts: EncodeOptions = {}): Promise<VideoHandle> {
    this.seen.push(opts);
    opts.progress?.start?.(10);
    opts.progress?.frames?.(4);
    await new Promise<void>((resolve) => {
      this.release = resolve;
      this.#started();
    });
    opts.progress?.finish?.();
    const decode = { kind: 'video' as const, requested: 10, decoded: 10, skipped: [], lostRanges: [] };
    let disposed = false;
    return {
      label: 'v',
      timestampsSec: [],
      decode,
      tokens: 10,
      bytes: 0,
      get disposed() {
        return disposed;
      },
      dispose: () => {
        disposed = true;
      },
      [Symbol.dispose]() {
        disposed = true;
      },
    };
  }

  chat(): Answer {
    return new Answer(
      (async function* () {
        yield 'ok';
        return {
          usage: { promptTokens: 1, videoTokens: 10, completionTokens: 1, totalTokens: 12 },
          finishReason: 'stop' as const,
        };
      })(),
    );
  }
}

describe('server: chunked prefill of a new video, encode gauges', () => {
  let dir: string;
  const servers: LongshotServer[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'longshot-chunked-'));
    for (const name of ['a.mp4', 'b.mp4']) writeFileSync(join(dir, name), name);
  });
  after(async () => {
    for (const s of servers) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function serve(engine: ChatEngine, prefillPieceTokens?: number) {
    const server = createServer(engine, { media: { allowedRoot: dir }, prefillPieceTokens });
    servers.push(server);
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    return `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
  }

  const ask = (url: string, video: string) =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'gated',
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

  it('encodes a new video in pieces paused by decode turns, and /metrics shows its progress', async () => {
    const engine = new GatedEngine();
    const url = await serve(engine, 256);
    const idle = parseMetrics(await (await fetch(`${url}/metrics`)).text());
    assert.equal(idle.types.get('longshot_video_encode_progress'), 'gauge');
    assert.equal(idle.samples.get('longshot_video_encodes_running'), 0);
    assert.equal(idle.samples.get('longshot_video_encode_progress'), 0);

    const answer = ask(url, 'a.mp4');
    await engine.started;
    const busy = parseMetrics(await (await fetch(`${url}/metrics`)).text()).samples;
    assert.equal(busy.get('longshot_video_encodes_running'), 1);
    assert.equal(busy.get('longshot_video_encode_frames{kind="done"}'), 4);
    assert.equal(busy.get('longshot_video_encode_frames{kind="total"}'), 10);
    assert.equal(busy.get('longshot_video_encode_progress'), 0.4);
    engine.release();
    const res = await answer;
    assert.equal(res.status, 200);
    assert.equal((await res.json()).choices[0].message.content, 'ok');
    assert.equal(engine.seen[0].pieces?.tokens, 256);
    await engine.seen[0].pieces?.pause(); // a decode turn (nothing decodes: at once)
    const done = parseMetrics(await (await fetch(`${url}/metrics`)).text()).samples;
    assert.equal(done.get('longshot_video_encodes_running'), 0);
  });

  it('stops a chunked encode at its next pause once the request has gone away', async () => {
    const engine = new GatedEngine();
    const url = await serve(engine, 64);
    const ctrl = new AbortController();
    const answer = fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'gated',
        messages: [{ role: 'user', content: [{ type: 'video_url', video_url: { url: 'b.mp4' } }] }],
      }),
      signal: ctrl.signal,
    }).catch(() => null);
    await engine.started;
    ctrl.abort();
    await answer;
    const pause = engine.seen[0].pieces!.pause;
    for (let i = 0; i < 100; i++) {
      const failed = await pause().then(
        () => null,
        (e: unknown) => e,
      );
      if (failed) {
        assert.match(String((failed as Error).message), /closed the connection/);
        engine.release();
        return;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail('the pause never stopped the encode');
  });

  it('encodes at once with prefillPieceTokens 0, and refuses a piece size that is not a whole number', async () => {
    const engine = new GatedEngine();
    const url = await serve(engine, 0);
    const answer = ask(url, 'b.mp4');
    await engine.started;
    engine.release();
    assert.equal((await answer).status, 200);
    assert.equal(engine.seen[0].pieces, undefined);
    assert.throws(
      () => createServer(engine, { prefillPieceTokens: 1.5 }),
      /prefillPieceTokens.*whole number/,
    );
  });
});
