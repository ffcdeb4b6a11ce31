/**
 * A model family added from outside the library: registered from this folder and nothing else, then used
 * through VideoLM, the CLI (a spawned `longshot` that imports register.ts) and the server.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createServer, VideoLM } from '../../../src/index.js';
import { saveSafetensors } from '../../../src/io/index.js';
import { registerFamily, unregisterFamily } from '../../../src/models/index.js';
import { H264, makeVideo } from '../../media/fixtures.js';
import { TOY_MODEL_TYPE, toy } from './family.js';

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const register = join(import.meta.dirname, 'register.ts');
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--import', register, 'src/cli/run.ts', ...args],
      {
        env: { ...process.env, NODE_TEST_CONTEXT: undefined },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('a toy model family registered from a test folder', () => {
  let dir: string;
  let video: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshot-toy-'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: TOY_MODEL_TYPE, hidden_size: 8 }));
    await saveSafetensors(join(dir, 'model.safetensors'), {
      'toy.weight': { dtype: 'F32', shape: [2, 4], data: new Float32Array(8) },
    });
    // 3 seconds at 10 fps: long enough for the toy's 2-second rule (5 frames instead of 3).
    video = await makeVideo(join(dir, 'clip.mp4'), {
      width: 64,
      height: 48,
      frames: 30,
      fps: 10,
      encode: H264,
    });
    registerFamily(toy);
  });
  after(async () => {
    unregisterFamily(toy);
    await rm(dir, { recursive: true, force: true });
  });

  it('VideoLM loads it and feeds it frames sampled and sized by its policy', async () => {
    using model = await VideoLM.load(dir);
    assert.equal(model.info.architecture, 'toy');
    assert.equal(model.info.parameters, 8);
    const handle = await model.encodeVideo(video);
    assert.equal(handle.timestampsSec.length, 5);
    const first = await model.ask(handle, 'what?').result();
    assert.equal(first.text, 'toy saw 5 frames at 32x24 for: what?');
    assert.equal(first.usage.videoTokens, 5);
    assert.equal(
      await model.ask(video, 'again', { frames: 2 }).text(),
      'toy saw 2 frames at 32x24 for: again',
    );
    handle.dispose();
  });

  it('the CLI answers with it and describes it', async () => {
    const ask = await cli(['ask', video, 'what?', '--model', dir, '--json']);
    assert.equal(ask.code, 0, ask.stderr);
    const answer = JSON.parse(ask.stdout);
    assert.equal(answer.architecture, 'toy');
    assert.equal(answer.answer, 'toy saw 5 frames at 32x24 for: what?');
    const info = await cli(['info', '--model', dir, '--frames', '4', '--json']);
    assert.equal(info.code, 0, info.stderr);
    const d = JSON.parse(info.stdout);
    assert.deepEqual([d.architecture, d.parameters, d.layers, d.hidden_size], ['toy', 8, 1, 8]);
    assert.deepEqual(d.details, { 'toy detail': 'one linear map' });
    // The toy's estimate: a frame's state is hidden_size f32 values on the CPU.
    assert.deepEqual([d.memory_bytes.videoTokens, d.memory_bytes.videoState], [4, 4 * 8 * 4]);
  });

  it('the server serves it', async () => {
    using model = await VideoLM.load(dir);
    const server = createServer(model, { media: { allowedRoot: dir } });
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (server.app.server.address() as AddressInfo).port;
      const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: dir,
          messages: [
            {
              role: 'user',
              content: [
                { type: 'video_url', video_url: { url: 'clip.mp4' } },
                { type: 'text', text: 'served?' },
              ],
            },
          ],
        }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as { choices: { message: { content: string } }[] };
      assert.equal(body.choices[0].message.content, 'toy saw 5 frames at 32x24 for: served?');
    } finally {
      await server.close();
    }
  });
});
