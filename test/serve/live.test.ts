/**
 * Live sessions in the server, over the shipped tiny Vamba (which answers the needle task): a session
 * watches a growing file (a y4m stream the test writes in two parts, drawn by the needle generator); the
 * question "Which word appeared?" asked before the needle frames were written gets another answer than the
 * generator's, and asked after them gets the generator's answer. Bad input gets clear errors: an unknown
 * session, a bad source, too many sessions; idle sessions expire.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VideoLM } from '../../src/facade/video-lm.js';
import { readQuestions, renderedFrames } from '../../src/needle/eval.js';
import { createServer, type LongshotServer } from '../../src/serve/index.js';
import { y4mParts } from './y4m.js';

const MODEL = 'needle';

describe('live sessions', () => {
  let root: string;
  let model: VideoLM;
  let server: LongshotServer;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'longshot-live-test-'));
    model = await VideoLM.load('models/needle-vamba-tiny', { device: 'cpu' });
    server = createServer(model, {
      modelId: MODEL,
      media: { allowedRoot: root },
      live: { maxSessions: 1, idleTtlMs: 60_000, startWaitMs: 20_000 },
    });
  });
  after(async () => {
    await server.close();
    model.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    server.app.inject({ method, url, payload });
  const ask = (id: string, question: string) =>
    inject('POST', '/v1/chat/completions', {
      model: MODEL,
      max_tokens: 8,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'video_url', video_url: { url: `live://${id}` } },
            { type: 'text', text: question },
          ],
        },
      ],
    });
  /** Polls the session until `ok` holds for its status (a minute at most). */
  async function until(id: string, ok: (s: Record<string, unknown>) => boolean) {
    for (const deadline = Date.now() + 60_000; ; ) {
      assert.ok(Date.now() < deadline, 'the session did not get there within a minute');
      const s = (await inject('GET', `/v1/live/sessions/${id}`)).json();
      if (ok(s)) return s;
      assert.notEqual(s.state, 'failed', String(s.error));
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('answers about what has been seen so far, the answer changing once the needle has been streamed', async () => {
    const [q] = (await readQuestions('examples/needle/questions.jsonl')).filter((x) => x.task === 'word');
    const needleAt = q.needles[0].startFrame;
    const y4m = y4mParts(renderedFrames(q), q.width, q.height, q.fps);
    const stream = join(root, 'stream.y4m');
    writeFileSync(stream, Buffer.concat([y4m.header, y4m.frames(0, needleAt)]));

    const created = await inject('POST', '/v1/live/sessions', {
      source: 'stream.y4m',
      fps: q.fps,
      idle_timeout_sec: 2,
    });
    assert.equal(created.statusCode, 201, created.body);
    const { id } = created.json();
    // ffmpeg's fps filter holds the newest frame back until it sees the next one.
    await until(id, (s) => (s.frames_seen as number) >= needleAt - 1);
    const before = await ask(id, q.question);
    assert.equal(before.statusCode, 200, before.body);
    const early = before.json().choices[0].message.content.trim();
    assert.notEqual(early, q.answer, 'the needle has not been streamed yet');

    appendFileSync(stream, y4m.frames(needleAt, q.frames));
    const done = await until(id, (s) => s.state === 'ended');
    assert.equal(done.frames_seen, q.frames);
    assert.equal(done.frames_encoded, q.frames);
    assert.equal(done.duration_sec, (q.frames - 1) / q.fps);
    // 112×112 frames: 4×4 merged tokens per frame pair.
    assert.equal(done.video_tokens, (q.frames / 2) * 16);
    assert.ok((done.memory_bytes as number) > 0);
    const after = await ask(id, q.question);
    assert.equal(after.json().choices[0].message.content.trim(), q.answer);

    // One session at a time here: a second is refused until this one is closed.
    const second = await inject('POST', '/v1/live/sessions', { source: 'stream.y4m' });
    assert.equal(second.statusCode, 429);
    assert.equal(second.json().error.code, 'too_many_live_sessions');
    const list = (await inject('GET', '/v1/live/sessions')).json();
    assert.deepEqual(
      list.data.map((s: { id: string }) => s.id),
      [id],
    );
    const closed = await inject('DELETE', `/v1/live/sessions/${id}`);
    assert.deepEqual(closed.json(), { id, object: 'live_session.deleted', deleted: true });
    assert.equal(server.live.size, 0);
  });

  it('refuses unknown sessions, bad sources and bad fields with clear errors', async () => {
    const unknown = await ask('live-nope', 'What happened?');
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().error.code, 'live_session_not_found');
    assert.equal(unknown.json().error.param, 'messages[0].content[0].video_url.url');
    assert.match(unknown.json().error.message, /no live session 'live-nope'/);
    assert.equal((await inject('GET', '/v1/live/sessions/live-nope')).statusCode, 404);
    assert.equal((await inject('DELETE', '/v1/live/sessions/live-nope')).statusCode, 404);

    const create = async (body: object) => (await inject('POST', '/v1/live/sessions', body)).json().error;
    assert.match((await create({ source: 'missing.y4m' })).message, /no such file under the media root/);
    assert.equal((await create({ source: '../outside.y4m' })).code, 'media_not_allowed');
    assert.equal((await create({ source: 'device:/dev/video0' })).code, 'media_not_allowed');
    assert.match((await create({ source: 'http://example.com/live.m3u8' })).message, /--allow-remote-media/);
    assert.match((await create({ source: 'gopher://x/y' })).message, /unsupported URL scheme/);
    assert.match((await create({ source: 'stream.y4m', fps: 0 })).message, /^fps: expected a number > 0/);
    assert.match((await create({})).message, /^source: expected a file path/);
    writeFileSync(join(root, 'notes.txt'), 'not a video at all\n');
    const notVideo = await create({ source: 'notes.txt', idle_timeout_sec: 1 });
    assert.equal(notVideo.code, 'invalid_media');
    assert.match(notVideo.message, /^notes\.txt: ffmpeg could not read it as video: /);
    assert.doesNotMatch(notVideo.message, new RegExp(root));
    assert.equal(server.live.size, 0);
  });

  it('closes sessions nobody has used for the idle time', async () => {
    writeFileSync(join(root, 'idle.y4m'), Buffer.alloc(0));
    const created = await inject('POST', '/v1/live/sessions', { source: 'idle.y4m', idle_timeout_sec: 60 });
    assert.equal(created.statusCode, 201, created.body);
    const s = created.json();
    assert.equal(s.state, 'starting');
    assert.equal(s.frames_seen, 0);
    server.live.expire(Date.now() + 60_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.live.size, 0);
    assert.equal((await inject('GET', `/v1/live/sessions/${s.id}`)).statusCode, 404);
  });
});
