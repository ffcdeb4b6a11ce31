/**
 * The web UI end to end in headless Chromium (test/serve/ui-browser.ts): the shipped tiny Vamba answers a
 * needle question about a generated needle video, and the timeline's top peak falls on the seconds the
 * needle is on screen (both from the generator's questions.jsonl, not from the model). Also the UI's
 * routes without a browser: ranged media, uploads and their limits, the `relevance` field of the API.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NeedleSample } from '../../src/needle/tasks.js';
import { ask, openUi, openVideo, type UiSession } from './ui-browser.js';

const ROOT = 'examples/needle';
const questions: (NeedleSample & { video: string })[] = readFileSync(join(ROOT, 'questions.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l));
const MODEL = 'needle-vamba-tiny';
/** Upload limit of the test server: above the example videos (~200 KiB). */
const LIMIT = 1024 * 1024;

describe('web UI', () => {
  let ui: UiSession;
  before(async () => {
    ui = await openUi({ modelId: MODEL, media: { allowedRoot: ROOT }, maxUploadBytes: LIMIT });
    await ui.page.goto(ui.url);
  });
  after(() => ui.close());

  for (const id of ['needle-00001', 'needle-00007']) {
    it(`answers ${id} and its timeline peaks on the needle; clicking the peak seeks there`, async () => {
      const q = questions.find((x) => x.id === id)!;
      const needle = q.needles[0];
      await openVideo(ui.page, q.video);
      const answer = await ask(ui.page, q.question);
      assert.equal(answer.trim(), q.answer);
      const peak = ui.page.locator('.peak.top');
      const start = Number(await peak.getAttribute('data-start'));
      const end = Number(await peak.getAttribute('data-end'));
      const at = Number(await peak.getAttribute('data-at'));
      // The peak is a run of frames (one temporal token group): one of them shows the needle, and the
      // middle of the time it covers, where a click seeks, is within the needle's seconds.
      assert.ok(
        start <= needle.endSec && end >= needle.startSec,
        `peak ${start}–${end} s, needle ${needle.startSec}–${needle.endSec} s`,
      );
      assert.ok(at >= needle.startSec && at <= needle.endSec, `seeks to ${at} s`);
      await peak.click();
      await ui.page.waitForFunction(
        (t) => Math.abs((document.getElementById('player') as HTMLVideoElement).currentTime - t) < 0.05,
        at,
      );
      // Thumbnails of the top moments, the first at the peak.
      assert.ok((await ui.page.locator('.moment').count()) >= 1);
      assert.match((await ui.page.locator('.moment div span').first().textContent()) ?? '', /#1/);
    });
  }

  it('keeps the conversation about the video: a follow-up is answered from the cached encoding', async () => {
    const q = questions.find((x) => x.id === 'needle-00007')!;
    await openVideo(ui.page, q.video);
    assert.match((await ui.page.textContent('#progress-text')) ?? '', /Already encoded/);
    await ask(ui.page, q.question);
    await ask(ui.page, 'And what else?');
    assert.equal(await ui.page.locator('.msg.user').count(), 2);
    assert.equal(await ui.page.locator('.msg.assistant').count(), 2);
  });

  it('shows a clear error for an upload that is not a video', async () => {
    await ui.page.setInputFiles('#file', {
      name: 'notes.mp4',
      mimeType: 'video/mp4',
      buffer: Buffer.from('just text'),
    });
    await ui.page.waitForSelector('#error:not([hidden])');
    assert.match((await ui.page.textContent('#error')) ?? '', /notes\.mp4 is not a video ffmpeg can read/);
  });

  it('serves the video bytes with range requests, only from the media root or uploads', async () => {
    const file = readFileSync(join(ROOT, 'needle-00001.mp4'));
    const media = `${ui.url}/ui/media?url=needle-00001.mp4`;
    const part = await fetch(media, { headers: { range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${file.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), file.subarray(100, 200));
    const tail = await fetch(media, { headers: { range: 'bytes=-10' } });
    assert.deepEqual(Buffer.from(await tail.arrayBuffer()), file.subarray(file.length - 10));
    const whole = await fetch(media);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    assert.equal(Number(whole.headers.get('content-length')), file.length);
    await whole.arrayBuffer();
    const past = await fetch(media, { headers: { range: `bytes=${file.length}-` } });
    assert.equal(past.status, 416);
    assert.equal((await fetch(`${ui.url}/ui/media?url=../../package.json`)).status, 403);
    assert.equal((await fetch(`${ui.url}/ui/media?url=upload:nope`)).status, 400);
  });

  it('streams encoding progress (frames, tokens, time left), then serves the encoding from the cache', async () => {
    const encode = async (url: string) => {
      const r = await fetch(`${ui.url}/ui/api/encode`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url }),
      });
      assert.equal(r.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      return (await r.text())
        .trim()
        .split('\n\n')
        .map((block) => {
          const [event, data] = block.split('\n');
          return { event: event.slice('event: '.length), data: JSON.parse(data.slice('data: '.length)) };
        });
    };
    // 32 frames of 112×112: 16 temporal pairs of (112/28)² = 16 merged tokens each.
    const first = await encode('needle-00002.mp4');
    const progress = first.filter((e) => e.event === 'progress').map((e) => e.data);
    assert.deepEqual(progress[0], { done: 0, total: 32 });
    const last = progress[progress.length - 1];
    assert.equal(last.done, 32);
    assert.equal(last.tokens, 256);
    assert.equal(last.eta_s, 0);
    for (let i = 2; i < progress.length; i++) assert.ok(progress[i].done > progress[i - 1].done);
    const done = first[first.length - 1];
    assert.equal(done.event, 'done');
    assert.equal(done.data.tokens, 256);
    assert.equal(done.data.frames, 32);
    assert.equal(done.data.cached, false);
    const again = await encode('needle-00002.mp4');
    assert.deepEqual(
      again.map((e) => e.event),
      ['done'],
    );
    assert.equal(again[0].data.cached, true);
    const missing = await encode('nope.mp4');
    assert.equal(missing[0].event, 'error');
    assert.match(missing[0].data.error.message, /no such file under the media root: nope\.mp4/);
  });

  it('takes uploads up to the limit and answers about them by their upload: URL', async () => {
    const video = readFileSync(join(ROOT, 'needle-00001.mp4'));
    const big = await fetch(`${ui.url}/ui/api/uploads`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'x-filename': 'big.mp4' },
      body: new Uint8Array(LIMIT + 1),
    });
    assert.equal(big.status, 413);
    assert.match((await big.json()).error.message, /larger than this server accepts .* --max-upload-mb/);
    const up = await fetch(`${ui.url}/ui/api/uploads`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'x-filename': 'mine.mp4' },
      body: video,
    });
    assert.equal(up.status, 201);
    const { url, bytes } = await up.json();
    assert.match(url, /^upload:[0-9a-f]{24}$/);
    assert.equal(bytes, video.length);
    const q = questions.find((x) => x.id === 'needle-00001')!;
    const r = await fetch(`${ui.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: MODEL,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'video_url', video_url: { url } },
              { type: 'text', text: q.question },
            ],
          },
        ],
        relevance: true,
      }),
    });
    const body = await r.json();
    assert.equal(body.choices[0].message.content.trim(), q.answer);
    // The API's relevance: one score per sampled frame (32 at 2 fps), summing to 1, peaking on the needle.
    const { timestamps_sec: t, scores } = body.relevance;
    assert.equal(t.length, q.frames);
    assert.ok(Math.abs(scores.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-6);
    const best = Math.max(...scores);
    const peakTimes = t.filter((_: number, i: number) => scores[i] === best);
    assert.ok(
      peakTimes.some((s: number) => s >= q.needles[0].startSec && s <= q.needles[0].endSec),
      `peak at ${peakTimes}`,
    );
  });

  it('returns relevance only when asked, and refuses a non-boolean', async () => {
    const request = (extra: object) =>
      fetch(`${ui.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: MODEL,
          messages: [
            {
              role: 'user',
              content: [
                { type: 'video_url', video_url: { url: 'needle-00002.mp4' } },
                { type: 'text', text: 'How many?' },
              ],
            },
          ],
          max_tokens: 2,
          ...extra,
        }),
      });
    const plain = await (await request({})).json();
    assert.equal(plain.relevance, undefined);
    assert.ok(plain.video);
    const bad = await request({ relevance: 'yes' });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error.message, /relevance: expected a boolean/);
  });
});
