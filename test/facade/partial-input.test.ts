/**
 * A damaged video never gets a confident answer in silence (issue #15, item 2): the frames that could not be
 * decoded are reported on the handle and the answer (VideoLM), on stderr and in `--json` (CLI) and in the
 * `video` field (server); `strict` refuses any loss, and more than a quarter lost is refused by default.
 * The video is the shipped example cut in half, as a user's interrupted download would be.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InputError } from '../../src/errors.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { createServer } from '../../src/serve/index.js';
import { scratch } from '../media/fixtures.js';

const WHOLE = 'examples/needle/needle-00001.mp4';
const QUESTION = 'What colour was the star?';

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
      env: { ...process.env, NODE_TEST_CONTEXT: undefined },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('partial input', () => {
  const dir = scratch();
  const half = join(dir, 'half.mp4');
  let model: VideoLM;
  before(async () => {
    const bytes = readFileSync(WHOLE);
    writeFileSync(half, bytes.subarray(0, bytes.length >> 1));
    model = await VideoLM.load(undefined, { device: 'cpu' });
  });
  after(() => {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('VideoLM: refused past a quarter lost, else reported on the handle and on every answer', async () => {
    await assert.rejects(model.encodeVideo(half), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /half\.mp4: \d+ of 32 frames could not be decoded .*over the allowed 25%/);
      return true;
    });
    using video = await model.encodeVideo(half, { maxLostFraction: 0.9 });
    const { requested, decoded, lostRanges } = video.decode;
    assert.equal(requested, 32);
    assert.ok(decoded > 0 && decoded < 24, `decoded ${decoded}`);
    // The lost frames are the second half's, and the handle's timestamps are those of decoded frames only.
    assert.equal(video.timestampsSec.length, decoded);
    assert.ok(
      lostRanges.some((r) => r.endSec >= 15),
      JSON.stringify(lostRanges),
    );
    assert.equal(
      lostRanges.reduce((n, r) => n + r.frames, 0),
      requested - decoded,
    );
    const result = await model.ask(video, QUESTION, { maxNewTokens: 4 }).result();
    assert.deepEqual(result.video, video.decode);
    await assert.rejects(model.encodeVideo(half, { strict: true, maxLostFraction: 1 }), /strict/);

    using whole = await model.encodeVideo(WHOLE);
    assert.deepEqual([whole.decode.requested, whole.decode.decoded, whole.decode.lostRanges], [32, 32, []]);
  });

  it('CLI: exit 3 by default; with --max-lost a warning on stderr before the answer and the loss in --json', async () => {
    const [refused, allowed] = await Promise.all([
      cli(['ask', half, QUESTION, '--device', 'cpu']),
      cli(['ask', half, QUESTION, '--device', 'cpu', '--max-lost', '0.9', '--json']),
    ]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(
      refused.stderr,
      /^longshot: .*half\.mp4: \d+ of 32 frames could not be decoded.*--max-lost\n$/,
    );
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stderr, /^longshot: warning: \d+ of 32 frames could not be decoded/);
    const out = JSON.parse(allowed.stdout);
    assert.equal(out.frames.requested, 32);
    assert.equal(out.frames.lost, 32 - out.frames.decoded);
    assert.ok(out.frames.lost > 8 && out.frames.lost_ranges.length > 0, allowed.stdout);
    const strict = await cli(['ask', WHOLE, QUESTION, '--device', 'cpu', '--strict', '--json']);
    assert.equal(strict.code, 0, strict.stderr);
    assert.equal(JSON.parse(strict.stdout).frames.lost, 0);
  });

  it('server: 400 naming the media field; max_lost_fraction answers with the `video` field; strict holds for a cached encoding', async () => {
    const server = createServer(model, { modelId: 'm', media: { allowedRoot: dir } });
    try {
      const ask = (extra: object, stream = false) =>
        server.app.inject({
          method: 'POST',
          url: '/v1/chat/completions',
          payload: {
            model: 'm',
            max_tokens: 4,
            stream,
            messages: [
              {
                role: 'user',
                content: [
                  { type: 'video_url', video_url: { url: 'half.mp4' } },
                  { type: 'text', text: QUESTION },
                ],
              },
            ],
            ...extra,
          },
        });
      const refused = await ask({});
      assert.equal(refused.statusCode, 400, refused.body);
      const err = refused.json().error;
      assert.match(err.message, /^half\.mp4: \d+ of 32 frames could not be decoded.*"max_lost_fraction"/);
      assert.equal(err.param, 'messages[0].content[0].video_url.url');
      assert.ok(!err.message.includes(dir), err.message);

      const allowed = await ask({ max_lost_fraction: 0.9 });
      assert.equal(allowed.statusCode, 200, allowed.body);
      const video = allowed.json().video;
      assert.equal(video.requested, 32);
      assert.ok(video.lost > 8 && video.lost === 32 - video.decoded, allowed.body);

      const streamed = await ask({ max_lost_fraction: 0.9 }, true);
      const final = streamed.body
        .split('\n\n')
        .filter((l) => l.startsWith('data: {'))
        .map((l) => JSON.parse(l.slice(6)))
        .find((c) => c.choices[0]?.finish_reason);
      assert.deepEqual(final.video, video);
      assert.equal(streamed.headers['x-longshot-video-cache'], 'hit');

      const strict = await ask({ max_lost_fraction: 0.9, strict: true }); // the same cached encoding
      assert.equal(strict.statusCode, 400, strict.body);
      assert.match(strict.json().error.message, /strict/);
      const bad = await ask({ max_lost_fraction: 2 });
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.json().error.param, 'max_lost_fraction');
    } finally {
      await server.close();
    }
  });
});
