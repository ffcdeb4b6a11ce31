/**
 * TimeViper behind the facade: a directory holding only the official torch.save file (no safetensors) loads
 * through VideoLM and `longshot ask --model`, its pickle read by the safe reader; token reduction as the user's
 * choice (VideoLM, the server's request field, the CLI) — `transv` runs the checkpoint's pdrop_type stages (the
 * usage counts what the last stage keeps; drop-only stages too), a checkpoint trained without them says it has
 * none, `uniform` thins each frame's tokens.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { createServer } from '../../src/serve/index.js';
import { H264, makeVideo, scratch } from '../media/fixtures.js';
import { TIMEVIPER_FIXTURES, writeTimeViperTokenizer } from './tiny-timeviper.js';

const TRANSV = join(TIMEVIPER_FIXTURES, 'transv');
// The fixture's stages: uni_2_0.34375-attn_6_0.25 (the last keeps a quarter of the original vision tokens).
const LAST_RATIO = 0.25;

describe('TimeViper through the facade', () => {
  let tmp = '';
  let pthOnly = '';
  let plain = '';
  let dropOnly = '';
  let clip = '';
  before(async () => {
    tmp = scratch();
    pthOnly = join(tmp, 'pth-only');
    plain = join(tmp, 'plain');
    dropOnly = join(tmp, 'drop');
    mkdirSync(pthOnly);
    mkdirSync(plain);
    mkdirSync(dropOnly);
    for (const f of ['config.json', 'model.pth']) copyFileSync(join(TRANSV, f), join(pthOnly, f));
    writeTimeViperTokenizer(pthOnly);
    for (const f of ['config.json', 'model.safetensors'])
      copyFileSync(join(TIMEVIPER_FIXTURES, 'plain', f), join(plain, f));
    writeTimeViperTokenizer(plain);
    for (const f of ['config.json', 'model.safetensors'])
      copyFileSync(join(TIMEVIPER_FIXTURES, 'drop', f), join(dropOnly, f));
    writeTimeViperTokenizer(dropOnly);
    clip = await makeVideo(join(tmp, 'clip.mp4'), { width: 48, height: 32, frames: 8, fps: 4, encode: H264 });
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('loads a directory holding only model.pth, counting the same parameters as the safetensors copy', async () => {
    await using st = await Checkpoint.open(TRANSV);
    const expected = st.names().reduce((n, name) => n + st.info(name).shape.reduce((a, d) => a * d, 1), 0);
    using model = await VideoLM.load(pthOnly, { device: 'cpu' });
    assert.equal(model.info.architecture, 'timeviper');
    assert.equal(model.info.parameters, expected);
    assert.equal(model.info.weightBytes, st.bytes);
  });

  it('reduces with TransV only when asked, counting what the last stage keeps', async () => {
    using model = await VideoLM.load(pthOnly, { device: 'cpu' });
    const ask = async (reduce?: { method: string; keep?: number }) => {
      using video = await model.encodeVideo(clip, reduce ? { reduce } : {});
      return (await model.ask(video, 'what is it?', { maxNewTokens: 2 }).result()).usage.videoTokens;
    };
    const all = await ask();
    assert.ok(all > 0 && all % 16 === 0, `${all} video tokens`);
    assert.equal(await ask({ method: 'none' }), all);
    assert.equal(await ask({ method: 'transv' }), Math.floor(all * LAST_RATIO));
    assert.equal(await ask({ method: 'uniform', keep: 0.5 }), all / 2);
    await assert.rejects(
      model.encodeVideo(clip, { reduce: { method: 'transv', keep: 0.5 } }),
      (e: unknown) => e instanceof UsageError && /give it without :KEEP/.test(e.message),
    );
  });

  it('says a checkpoint trained without TransV has none; drop-only stages run as they are', async () => {
    using model = await VideoLM.load(plain, { device: 'cpu' });
    await assert.rejects(
      model.encodeVideo(clip, { reduce: { method: 'transv' } }),
      (e: unknown) =>
        e instanceof UsageError &&
        /transv needs a checkpoint trained with TransV’s stages .*this timeviper model has none/.test(
          e.message,
        ),
    );
    using drop = await VideoLM.load(dropOnly, { device: 'cpu' });
    const tokens = async (reduce?: { method: string }) => {
      using video = await drop.encodeVideo(clip, reduce ? { reduce } : {});
      return (await drop.ask(video, 'what is it?', { maxNewTokens: 2 }).result()).usage.videoTokens;
    };
    assert.equal(await tokens({ method: 'transv' }), Math.floor((await tokens()) * LAST_RATIO));
  });

  it('the server takes reduce: "transv" per request and counts what the last stage keeps in usage', async () => {
    const model = await VideoLM.load(pthOnly, { device: 'cpu' });
    const server = createServer(model, { modelId: 'tv', media: { allowedRoot: tmp } });
    try {
      await server.app.listen({ host: '127.0.0.1', port: 0 });
      const url = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
      const post = async (reduce?: string) => {
        const res = await fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'tv',
            max_tokens: 2,
            messages: [
              {
                role: 'user',
                content: [
                  { type: 'video_url', video_url: { url: 'clip.mp4' } },
                  { type: 'text', text: 'what is it?' },
                ],
              },
            ],
            ...(reduce ? { reduce } : {}),
          }),
        });
        return { status: res.status, json: await res.json() };
      };
      const all = await post();
      const transv = await post('transv');
      const bad = await post('transv:0.5');
      assert.equal(all.status, 200, JSON.stringify(all.json));
      assert.equal(transv.status, 200, JSON.stringify(transv.json));
      const tokens = (r: typeof all) => r.json.usage.prompt_tokens_details.video_tokens;
      assert.equal(tokens(transv), Math.floor(tokens(all) * LAST_RATIO));
      assert.equal(bad.status, 400);
      assert.match(bad.json.error.message, /give it without :KEEP/);
    } finally {
      await server.close();
    }
  });

  it('longshot ask --model <pth-only dir> --reduce transv answers and reports the reduced count', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
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
    const ask = (...reduce: string[]) =>
      run(['ask', clip, 'what is it?', '--model', pthOnly, ...reduce, '--max-new-tokens', '2', '--json']);
    const [all, transv] = await Promise.all([ask(), ask('--reduce', 'transv')]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(transv.code, 0, transv.stderr);
    const tokens = (r: { stdout: string }) => JSON.parse(r.stdout).usage.videoTokens;
    assert.ok(tokens(all) > 0);
    assert.equal(tokens(transv), Math.floor(tokens(all) * LAST_RATIO));
  });
});
