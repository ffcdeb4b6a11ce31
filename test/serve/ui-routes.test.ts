/** The web UI's routes with an API key and without the UI (fastify inject, no browser; ui.test.ts loads the page's scripts). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VideoLM } from '../../src/facade/video-lm.js';
import { createServer, type LongshotServer } from '../../src/serve/index.js';

describe('web UI routes', () => {
  let model: VideoLM;
  let locked: LongshotServer;
  let plain: LongshotServer;
  before(async () => {
    model = await VideoLM.load();
    locked = createServer(model, { apiKey: 'sesame', media: { allowedRoot: 'examples/needle' } });
    plain = createServer(model, { ui: false });
  });
  after(async () => {
    await locked.close();
    await plain.close();
    model.dispose();
  });

  it('serves the page and its assets to anyone, the data only with the key', async () => {
    const page = await locked.app.inject({ url: '/' });
    assert.equal(page.statusCode, 200);
    assert.match(page.headers['content-type'] as string, /^text\/html/);
    assert.match(page.body, /<script type="module" src="\/ui\/assets\/main\.js">/);
    const css = await locked.app.inject({ url: '/ui/assets/style.css' });
    assert.equal(css.statusCode, 200);
    assert.match(css.headers['content-type'] as string, /^text\/css/);
    assert.equal((await locked.app.inject({ url: '/ui/assets/..%2Fpackage.json' })).statusCode, 404);

    assert.equal((await locked.app.inject({ url: '/ui/api/info' })).statusCode, 401);
    const info = await locked.app.inject({
      url: '/ui/api/info',
      headers: { authorization: 'Bearer sesame' },
    });
    assert.equal(info.statusCode, 200);
    const body = info.json();
    assert.equal(body.architecture, 'vamba');
    assert.equal(body.library, true);
    // Vamba grows a live video and the server allows sessions (its default limit): the page offers them.
    assert.equal(body.live, true);
    const frame = await locked.app.inject({
      url: '/ui/api/live/live-nope/frame',
      headers: { authorization: 'Bearer sesame' },
    });
    assert.equal(frame.statusCode, 404);
    assert.equal(frame.json().error.code, 'live_session_not_found');
    assert.ok(body.memory.weights_bytes > 0 && body.memory.device_bytes > 0);
    const videos = await locked.app.inject({
      url: '/ui/api/videos',
      headers: { authorization: 'Bearer sesame' },
    });
    assert.deepEqual(
      videos.json().data.map((v: { path: string }) => v.path),
      ['needle-00001.mp4', 'needle-00002.mp4', 'needle-00007.mp4'],
    );
    // The player cannot send headers: media takes the key as a query parameter.
    assert.equal((await locked.app.inject({ url: '/ui/media?url=needle-00001.mp4' })).statusCode, 401);
    const media = await locked.app.inject({ url: '/ui/media?url=needle-00001.mp4&key=sesame' });
    assert.equal(media.statusCode, 200);
    assert.equal(media.headers['content-type'], 'video/mp4');
  });

  it('without a media root the library says how to get one; --no-ui serves no page', async () => {
    const noRoot = createServer(model, {});
    try {
      const r = await noRoot.app.inject({ url: '/ui/api/videos' });
      assert.equal(r.statusCode, 403);
      assert.match(r.json().error.message, /--allowed-root <dir>.*upload a video instead/);
    } finally {
      await noRoot.close();
    }
    assert.equal((await plain.app.inject({ url: '/' })).statusCode, 404);
    assert.equal((await plain.app.inject({ url: '/ui/api/info' })).statusCode, 404);
  });
});
