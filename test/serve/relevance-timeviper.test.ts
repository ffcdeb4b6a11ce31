/**
 * The API's `relevance` field for TimeViper (models/timeviper/relevance.ts), through the server on a tiny
 * random TimeViper with TransV stages: with the stages on (`reduce: "transv"`) one score per decoded frame at
 * the frames' times, summing to 1, telling frames apart; without them flat (every token reaches every layer);
 * no field unless asked.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VideoLM } from '../../src/facade/video-lm.js';
import { createServer, type LongshotServer } from '../../src/serve/index.js';
import { writeTinyTimeViper } from '../models/tiny-timeviper.js';

describe('relevance: TimeViper through the API', () => {
  let dir: string;
  let model: VideoLM;
  let server: LongshotServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'longshot-tv-'));
    writeTinyTimeViper(dir);
    model = await VideoLM.load(dir, { device: 'cpu' });
    server = createServer(model, { modelId: 'tiny-timeviper', media: { allowedRoot: 'examples/needle' } });
  });
  after(async () => {
    await server.close();
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const chat = async (extra: object) =>
    (
      await server.app.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        payload: {
          model: 'tiny-timeviper',
          max_tokens: 3,
          messages: [
            {
              role: 'user',
              content: [
                { type: 'video_url', video_url: { url: 'needle-00001.mp4' } },
                { type: 'text', text: 'what is it?' },
              ],
            },
          ],
          ...extra,
        },
      })
    ).json();

  it('gives each decoded frame its share of the tokens kept and transferred', async () => {
    const body = await chat({ relevance: true, reduce: 'transv' });
    const { timestamps_sec: t, scores } = body.relevance;
    assert.equal(t.length, body.video.decoded);
    assert.equal(scores.length, t.length);
    for (let i = 1; i < t.length; i++) assert.ok(t[i] > t[i - 1]);
    assert.ok(scores.every((s: number) => s >= 0));
    assert.ok(Math.abs(scores.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-9);
    // The attention-guided stage picks by content: the frames are not all worth the same.
    assert.ok(Math.max(...scores) > Math.min(...scores));
    assert.equal((await chat({ reduce: 'transv' })).relevance, undefined);
    const flat = (await chat({ relevance: true })).relevance.scores;
    for (const s of flat) assert.ok(Math.abs(s - 1 / flat.length) < 1e-12);
  });

  it('does not offer live sessions in the page: TimeViper cannot grow an encoded video', async () => {
    const info = (await server.app.inject({ url: '/ui/api/info' })).json();
    assert.equal(info.architecture, 'timeviper');
    assert.equal(info.live, false);
  });
});
