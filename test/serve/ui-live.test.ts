/**
 * The web UI's live source in headless Chromium (test/serve/ui-browser.ts): the page opens a live session on a
 * growing y4m file under the media root (a needle record's frames, written in two parts: no camera needed),
 * shows the frames seen so far, and answers the needle question about the whole stream once it has been
 * seen, with a timeline over the stream's seconds whose top moment covers the needle (from the generator's
 * questions.jsonl, not from the model).
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readQuestions, renderedFrames } from '../../src/needle/eval.js';
import { clock } from '../../web/src/timeline.js';
import { ask, openUi, type UiSession } from './ui-browser.js';
import { y4mParts } from './y4m.js';

describe('web UI: live session', () => {
  let root: string;
  let ui: UiSession;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'longshot-ui-live-'));
    ui = await openUi({ modelId: 'needle-vamba-tiny', media: { allowedRoot: root } });
    await ui.page.goto(ui.url);
  });
  after(async () => {
    await ui.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('watches a growing file, shows its frames, and answers about what it has seen', async () => {
    const [q] = (await readQuestions('examples/needle/questions.jsonl')).filter((x) => x.task === 'word');
    const needle = q.needles[0];
    const y4m = y4mParts(renderedFrames(q), q.width, q.height, q.fps);
    const stream = join(root, 'stream.y4m');
    writeFileSync(stream, Buffer.concat([y4m.header, y4m.frames(0, needle.startFrame)]));

    const page = ui.page;
    await page.waitForSelector('#live:not([hidden])');
    await page.fill('#live-source', 'stream.y4m');
    await page.fill('#live-fps', String(q.fps));
    await page.click('#watch');
    // Frames arrive in the strip and the newest one in the live view while the file grows.
    await page.waitForFunction(() => document.querySelectorAll('#live-frames figure').length >= 2, null, {
      timeout: 60_000,
    });
    assert.equal(await page.isHidden('#player'), true);
    appendFileSync(stream, y4m.frames(needle.startFrame, q.frames));
    await page.waitForFunction(
      (n) =>
        new RegExp(`${n} frames seen, ${n} encoded`).test(
          document.getElementById('progress-text')!.textContent!,
        ),
      q.frames,
      { timeout: 60_000 },
    );
    // Every frame taken is in the strip, in stream order (the page fetches the ones since its last look).
    await page.waitForFunction(
      (n) => document.querySelectorAll('#live-frames figure').length === n,
      q.frames,
    );
    const captions = await page.locator('#live-frames figcaption').allTextContents();
    assert.equal(captions[0], '0:00.0');
    assert.equal(captions[q.frames - 1], clock((q.frames - 1) / q.fps));
    const view = await page.evaluate(() => {
      const c = document.getElementById('live-view') as HTMLCanvasElement;
      return { width: c.width, height: c.height };
    });
    assert.deepEqual(view, { width: q.width, height: q.height });

    const answer = await ask(page, q.question);
    assert.equal(answer.trim(), q.answer);
    const peak = page.locator('.peak.top');
    const start = Number(await peak.getAttribute('data-start'));
    const end = Number(await peak.getAttribute('data-end'));
    assert.ok(
      start <= needle.endSec && end >= needle.startSec,
      `peak ${start}–${end} s, needle ${needle.startSec}–${needle.endSec} s`,
    );
    // A thumbnail of the top moment, drawn from the frames seen.
    await page.waitForSelector('.moment[data-ready]');
    assert.equal(ui.server.live.size, 1);
    assert.match((await page.textContent('#memory')) ?? '', /^weights [\d.]+ MiB · cpu in use [\d.]+ MiB/);
  });

  it('serves a session’s frames as thumbnails after a given second, and refuses a bad one', async () => {
    const [s] = ui.server.live.list();
    const thumbs = async (query: string) => fetch(`${ui.url}/ui/api/live/${s.id}/thumbs${query}`);
    const { data } = await (await thumbs('?after=10')).json();
    const times = data.map((f: { time_sec: number }) => f.time_sec);
    assert.ok(times.length > 0 && times.every((t: number) => t > 10), `${times}`);
    // 112×112 needle frames become 90×90 RGB thumbnails.
    assert.equal(Buffer.from(data[0].rgb, 'base64').length, 90 * 90 * 3);
    assert.deepEqual([data[0].width, data[0].height], [90, 90]);
    assert.equal((await thumbs('?after=soon')).status, 400);
    const frame = await fetch(`${ui.url}/ui/api/live/${s.id}/frame`);
    assert.equal(Number(frame.headers.get('x-frame-width')), 112);
    assert.equal((await frame.arrayBuffer()).byteLength, 112 * 112 * 3);
  });
});
