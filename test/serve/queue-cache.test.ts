import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VideoHandle } from '../../src/facade/engine.js';
import type { ApiError } from '../../src/serve/errors.js';
import { RequestQueue } from '../../src/serve/queue.js';
import { VideoCache } from '../../src/serve/video-cache.js';

function handle(label: string, bytes = 10): VideoHandle & { freed: number } {
  const h = {
    label,
    timestampsSec: [],
    decode: { kind: 'video' as const, requested: 0, decoded: 0, skipped: [], lostRanges: [] },
    tokens: 1,
    bytes,
    freed: 0,
    get disposed() {
      return h.freed > 0;
    },
    dispose() {
      h.freed++;
    },
    [Symbol.dispose]() {
      h.dispose();
    },
  };
  return h;
}

describe('VideoCache', () => {
  it('shares one encoding between concurrent requests for the same key', async () => {
    const cache = new VideoCache(2);
    let encodes = 0;
    let finish!: (h: VideoHandle) => void;
    const encode = () => {
      encodes++;
      return new Promise<VideoHandle>((r) => {
        finish = r;
      });
    };
    const a = cache.lease('k', encode);
    const b = cache.lease('k', encode);
    finish(handle('k'));
    const [la, lb] = await Promise.all([a, b]);
    assert.equal(encodes, 1);
    assert.equal(la.handle, lb.handle);
    assert.deepEqual([la.hit, lb.hit], [false, true]);
  });

  it('does not keep a failed encoding', async () => {
    const cache = new VideoCache(2);
    await assert.rejects(
      cache.lease('k', () => Promise.reject(new Error('bad video'))),
      /bad video/,
    );
    assert.equal(cache.size, 0);
    const l = await cache.lease('k', async () => handle('k'));
    assert.equal(l.hit, false);
  });

  it('evicts the least recently used, freeing a handle only once no request uses it', async () => {
    const cache = new VideoCache(2);
    const [a, b, c] = [handle('a'), handle('b'), handle('c')];
    const la = await cache.lease('a', async () => a);
    (await cache.lease('b', async () => b)).release();
    (await cache.lease('b', async () => b)).release(); // b is now more recent than a
    (await cache.lease('c', async () => c)).release(); // over the limit: a goes, but a request holds it
    assert.equal(cache.size, 2);
    assert.equal(a.freed, 0);
    la.release();
    la.release(); // idempotent
    assert.equal(a.freed, 1);
    assert.equal(b.freed + c.freed, 0);
    assert.equal((await cache.lease('b', async () => handle('b2'))).hit, true);
  });

  it('keeps within a byte budget', async () => {
    const cache = new VideoCache(10, 25);
    const hs = [handle('a', 10), handle('b', 10), handle('c', 10)];
    for (const h of hs) (await cache.lease(h.label, async () => h)).release();
    assert.equal(cache.bytes, 20);
    assert.equal(hs[0].freed, 1);
    cache.clear();
    assert.deepEqual(
      hs.map((h) => h.freed),
      [1, 1, 1],
    );
  });
});

describe('RequestQueue', () => {
  it('runs up to its concurrency, queues in order, refuses past the queue with 429', async () => {
    const q = new RequestQueue(1, 2);
    const order: string[] = [];
    const r1 = await q.acquire();
    const waiter = (name: string) =>
      q.acquire().then((a) => {
        order.push(name);
        return a;
      });
    const w2 = waiter('2');
    const w3 = waiter('3');
    await assert.rejects(q.acquire(), (e: ApiError) => e.status === 429 && e.code === 'queue_full');
    assert.deepEqual(q.stats, {
      running: 1,
      queued: 2,
      concurrency: 1,
      max_queue: 2,
    });
    r1.release();
    const r2 = await w2;
    assert.deepEqual(order, ['2']);
    r2.release();
    (await w3).release();
    assert.deepEqual(order, ['2', '3']);
    assert.equal(q.stats.running, 0);
  });

  it('drops a waiter whose request is aborted, and answers 503 once closed', async () => {
    const q = new RequestQueue(1, 4);
    const r1 = await q.acquire();
    const ctrl = new AbortController();
    const waiting = q.acquire(ctrl.signal);
    ctrl.abort(new Error('client gone'));
    await assert.rejects(waiting, /client gone/);
    assert.equal(q.stats.queued, 0);
    const pending = q.acquire();
    q.close();
    await assert.rejects(pending, (e: ApiError) => e.status === 503);
    await assert.rejects(q.acquire(), (e: ApiError) => e.status === 503);
    r1.release();
  });
});
