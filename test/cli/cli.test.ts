/**
 * The CLI as a user runs it: `node --import tsx src/cli/run.ts …`, checking stdout, --json and exit codes.
 * Spawned asynchronously, because some commands talk to the fake hub running in this process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findTools } from '../../src/media/ffmpeg.js';
import { parseQwen2VLConfig } from '../../src/models/qwen2vl/config.js';
import { vambaSpecs } from '../../src/models/vamba/weights.js';
import { countParams } from '../../src/nn/params.js';
import { TINY_TENSORS, writeTinyCheckpoint } from '../facade/tiny-checkpoint.js';
import { TINY_VAMBA_CONFIG, writeTinyQwen2VL, writeTinyVamba } from '../facade/tiny-models.js';
import { FakeHub } from '../hub/fake-hub.js';
import { H264, makeVideo, scratch } from '../media/fixtures.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const COMMIT = '1234567890abcdef1234567890abcdef12345678';

describe('longshot CLI', () => {
  let tmp: string;
  let tiny: string;
  let qwen: string;
  let clip: string;
  let hub: FakeHub;
  let hubEnv: NodeJS.ProcessEnv;
  before(async () => {
    tmp = scratch();
    tiny = join(tmp, 'tiny');
    mkdirSync(tiny);
    await writeTinyCheckpoint(tiny);
    qwen = join(tmp, 'qwen');
    mkdirSync(qwen);
    await writeTinyQwen2VL(qwen);
    clip = await makeVideo(join(tmp, 'clip.mp4'), {
      width: 96,
      height: 64,
      frames: 20,
      fps: 10,
      encode: H264,
    });
    hub = await new FakeHub().start();
    hub.repos.set('org/tiny', {
      commit: COMMIT,
      files: {
        'config.json': { data: readFileSync(join(tiny, 'config.json')) },
        'model.safetensors': { data: readFileSync(join(tiny, 'model.safetensors')), lfs: true },
        'pytorch_model.bin': { data: Buffer.from('not wanted'), lfs: true },
      },
    });
    hubEnv = {
      HF_ENDPOINT: hub.hubUrl,
      HF_HUB_CACHE: join(tmp, 'hf-cache'),
      HF_TOKEN: '',
      HF_HUB_OFFLINE: '',
    };
  });
  after(() => hub.stop());

  it('--help lists every command, each with examples', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['ask', 'caption', 'serve', 'download', 'info', 'probe', 'frames'])
      assert.match(r.stdout, new RegExp(`\\n  ${c} `));
    const commands = ['ask', 'serve', 'download'];
    const helps = await Promise.all(commands.map((c) => cli([c, '--help'])));
    helps.forEach((h, i) => {
      assert.equal(h.code, 0);
      assert.match(h.stdout, /Examples:\n {2}\$ longshot /, `${commands[i]} --help has no examples`);
    });
  });

  it('bad usage exits 2 and says what is wrong', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['ask', 'clip.mp4'], /missing required argument 'question'/],
      [['ask', 'clip.mp4', 'q', '--frames', '0'], /--frames must be an integer ≥ 2.*got '0'/],
      [['ask', 'clip.mp4', 'q', '--frames', '1'], /--frames must be an integer ≥ 2 \(frames go in pairs\)/],
      [
        ['caption', 'clip.mp4', '--device', 'tpu', '--top-p', '0.5'],
        /argument 'tpu' is invalid.*auto, cpu, cuda/,
      ],
      [['serve', '--port', 'http'], /--port must be an integer from 0 to 65535, got 'http'/],
      [['serve', '--port', '70000'], /--port must be an integer from 0 to 65535, got '70000'/],
      [['serve', '--memory-budget', '0'], /--memory-budget must be a positive number of GiB, got '0'/],
      [
        ['chat', 'hello', '--reasoning-budget', '4'],
        /vamba does not think before answering: drop the reasoning budget/,
      ],
      [['ask', 'clip.mp4', 'q', '--reduce', 'uniform:2'], /"uniform:2" is not METHOD or METHOD:KEEP/],
      [
        ['ask', join('examples/needle', 'needle-00001.mp4'), 'q', '--reduce', 'uniform'],
        /reduce: vamba models take none, not uniform/,
      ],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(args)));
    cases.forEach(([args, message], i) => {
      const r = runs[i];
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    });
  });

  it('sampling options that contradict each other or the model are usage errors (2), in one line', async () => {
    const video = join('examples/needle', 'needle-00001.mp4');
    const [both, vamba, rate] = await Promise.all([
      cli(['ask', video, 'q', '--fps', '2', '--sampling', 'uniform']),
      // --fps alone means --sampling fps, which Vamba (the embedded model) does not do.
      cli(['ask', video, 'q', '--fps', '2']),
      cli(['ask', clip, 'q', '--fps', '4', '--model', qwen, '--max-new-tokens', '2', '--json']),
    ]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(
      both.stderr,
      /^longshot: --fps samples at a rate, --sampling uniform a fixed number of frames/,
    );
    assert.equal(vamba.code, 2, vamba.stderr);
    assert.match(vamba.stderr, /^longshot: this model samples with uniform or middle, not 'fps'.*\n$/);
    // Qwen2-VL samples at the rate given: the 2 s clip at 4 fps is 8 frames, 4 pairs of 3×2 tokens.
    assert.equal(rate.code, 0, rate.stderr);
    assert.equal(JSON.parse(rate.stdout).usage.videoTokens, 4 * 3 * 2);
  });

  it('--clip samples one stretch: the sampling rules apply to the clip; a bad clip is a usage error (2)', async () => {
    const [clipped, reversed, outside] = await Promise.all([
      cli([
        'ask',
        clip,
        'q',
        '--clip',
        '0.5-1.5',
        '--fps',
        '4',
        '--model',
        qwen,
        '--max-new-tokens',
        '2',
        '--json',
      ]),
      cli(['ask', clip, 'q', '--clip', '5-3']),
      cli(['ask', clip, 'q', '--clip', '7-9', '--model', qwen, '--max-new-tokens', '2']),
    ]);
    // 0.5–1.5 s of the 10 fps clip is frames 5…15 (11 frames); at 4 fps that is 4.4 → 4 frames, 2 pairs of 3×2.
    assert.equal(clipped.code, 0, clipped.stderr);
    assert.equal(JSON.parse(clipped.stdout).usage.videoTokens, 2 * 3 * 2);
    assert.equal(reversed.code, 2, reversed.stderr);
    assert.match(
      reversed.stderr,
      /--clip must be START-END in seconds with START < END \(e\.g\. 60-90\), got '5-3'/,
    );
    assert.equal(outside.code, 3, outside.stderr);
    assert.match(outside.stderr, /the clip 7–9 s starts after the video ends \(2\.00 s\)/);
  });

  it('serve refuses what it cannot do before loading the model: one line, exit 2', async () => {
    const busy = createNetServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const taken = (busy.address() as AddressInfo).port;
    try {
      const runs = await Promise.all([
        cli(['serve', '--port', String(taken)]),
        cli(['serve', '--allowed-root', join(tmp, 'no-such-dir')]),
        cli(['serve', '--host', '192.0.2.1', '--port', '0']), // TEST-NET-1: never this machine's
      ]);
      const expected = [
        new RegExp(`^longshot: port ${taken} on 127\\.0\\.0\\.1 is already in use: .*--port`),
        /^longshot: --allowed-root .*no-such-dir: no such directory/,
        /^longshot: --host 192\.0\.2\.1 is not an address of this machine/,
      ];
      runs.forEach((r, i) => {
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, expected[i]);
        assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
      });
    } finally {
      busy.close();
    }
  });

  it('ask and caption: a missing video is an input error (3), a bad model a model error (4)', async () => {
    let r = await cli(['ask', join(tmp, 'nope.mp4'), 'what?']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^longshot: no such file: .*nope\.mp4\n$/);
    // A long message is cut after 500 characters, saying how much was left out.
    const long = join(tmp, ...Array.from({ length: 8 }, (_, i) => `${i}`.repeat(200)), 'nope.mp4');
    r = await cli(['ask', long, 'what?']);
    assert.equal(r.code, 3);
    const shown = `longshot: ${`no such file: ${long}`.slice(0, 500)}…(${`no such file: ${long}`.length - 500} more characters)\n`;
    assert.equal(r.stderr, shown);
    const video = join(tmp, 'some.mp4');
    writeFileSync(video, 'x');
    r = await cli(['caption', video, '--model', join(tmp, 'no-such-model')]);
    assert.equal(r.code, 4);
    assert.match(
      r.stderr,
      /neither a directory, a shipped model \(.*needle-vamba-tiny\) nor a Hugging Face id/,
    );
    r = await cli(['ask', video, 'what?', '--model', tiny]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /no tokenizer\.json/);
    assert.ok(!r.stderr.includes('    at '), 'a stack trace reached the user');
  });

  // Questions and answers come from the generator's questions.jsonl, not from the model.
  const examples = () =>
    readFileSync('examples/needle/questions.jsonl', 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { video: string; question: string; answer: string });

  it('ask with no --model answers the example videos with the embedded needle model, as the README shows', async () => {
    const questions = examples();
    const runs = await Promise.all(
      questions.map((q) => cli(['ask', join('examples/needle', q.video), q.question])),
    );
    for (const [i, r] of runs.entries()) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${questions[i].answer}\n`, questions[i].question);
    }
  });

  it('ask --json names the embedded model as the demo; a script (stderr not a terminal) gets no notice', async () => {
    const q = examples()[0];
    const video = join('examples/needle', q.video);
    const env = { LONGSHOT_CACHE_DIR: join(tmp, 'longshot-cache') };
    const [embedded, chosen] = await Promise.all([
      cli(['ask', video, q.question, '--json'], env),
      cli(['ask', video, q.question, '--json', '--model', 'models/needle-qwen2vl-tiny'], env),
    ]);
    assert.equal(embedded.code, 0, embedded.stderr);
    const e = JSON.parse(embedded.stdout);
    assert.equal(e.model, 'needle-vamba-tiny');
    assert.equal(e.embedded_demo, true);
    assert.equal(embedded.stderr.includes('tiny demo'), false);
    assert.equal(existsSync(join(tmp, 'longshot-cache')), false, 'no state written for a script');
    assert.equal(chosen.code, 0, chosen.stderr);
    assert.equal('embedded_demo' in JSON.parse(chosen.stdout), false);
  });

  // The Qwen2-VL baseline's chat template writes the video pad; TSTAR-MambaMia's family loads from its config.json,
  // found by its shipped name.
  for (const model of ['models/needle-qwen2vl-tiny', 'needle-mambamia-tiny'])
    it(`ask --model ${model} (shipped) answers the example videos`, async () => {
      const questions = examples();
      const runs = await Promise.all(
        questions.map((q) => cli(['ask', join('examples/needle', q.video), q.question, '--model', model])),
      );
      for (const [i, r] of runs.entries()) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, `${questions[i].answer}\n`, questions[i].question);
      }
    });

  it('ask answers about a video with a real (tiny, random) model: --json, --stream, caption', async () => {
    const common = ['--model', qwen, '--frames', '4', '--sampling', 'uniform', '--max-new-tokens', '5'];
    const [json, streamed, caption, broken] = await Promise.all([
      cli(['ask', clip, 'Which word appeared?', ...common, '--json']),
      cli(['ask', clip, 'Which word appeared?', ...common, '--stream']),
      cli(['caption', clip, ...common]),
      cli(['ask', join(tmp, 'some.mp4'), 'what?', ...common]),
    ]);
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout);
    assert.equal(out.architecture, 'qwen2_vl');
    assert.equal(out.question, 'Which word appeared?');
    // 96×64 → 84×56 after smart_resize: 3×2 merged tokens per pair of frames.
    assert.equal(out.usage.videoTokens, 2 * 3 * 2);
    assert.ok(out.usage.completionTokens >= 1 && out.usage.completionTokens <= 5);
    assert.equal(out.finish_reason, out.usage.completionTokens === 5 ? 'length' : 'stop');
    assert.equal(
      out.usage.totalTokens,
      out.usage.promptTokens + out.usage.videoTokens + out.usage.completionTokens,
    );
    assert.equal(streamed.code, 0, streamed.stderr);
    assert.equal(streamed.stdout, `${out.answer}\n`, 'greedy answers differ between --stream and --json');
    assert.equal(caption.code, 0, caption.stderr);
    assert.ok(caption.stdout.endsWith('\n'));
    assert.equal(broken.code, 3, 'a file that is not a video');
    assert.match(broken.stderr, /some\.mp4/);
  });

  it('serve answers OpenAI requests until it is stopped', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/run.ts',
        'serve',
        '--model',
        qwen,
        '--name',
        'tiny',
        '--port',
        '0',
        '--allowed-root',
        tmp,
      ],
      { env: { ...process.env, NODE_TEST_CONTEXT: undefined } },
    );
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        const m = /serving .* at (http:\/\/\S+)\/v1/.exec(stderr);
        if (m) resolve(m[1]);
      });
      child.once('close', () => reject(new Error(`serve exited: ${stderr}`)));
    });
    const models = await (await fetch(`${url}/v1/models`)).json();
    assert.deepEqual(
      models.data.map((m: { id: string }) => m.id),
      ['tiny'],
    );
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'tiny',
        messages: [
          {
            role: 'user',
            content: [
              { type: 'video_url', video_url: { url: 'clip.mp4' } },
              { type: 'text', text: 'Describe the video.' },
            ],
          },
        ],
        max_tokens: 3,
        frames: 4,
        sampling: 'uniform',
      }),
    });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).usage.prompt_tokens_details.cached_tokens, 0);
    const code = await new Promise<number | null>((resolve) => {
      child.once('close', resolve);
      child.kill('SIGTERM');
    });
    assert.equal(code, 0);
  });

  it("serve with no --model serves the embedded model under a short id, and the README's curl works", async () => {
    const readme = readFileSync('README.md', 'utf8');
    const command = /^npx longshot serve (.*?)\s+#/m.exec(readme);
    const curl = /^curl (\S+) -H 'content-type: application\/json' -d '(\{[\s\S]*?\})'$/m.exec(readme);
    assert.ok(command && curl, 'the README has a serve command and a curl request');
    const args = command[1].split(/\s+/).map((a, i, all) => (all[i - 1] === '--port' ? '0' : a));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'serve', ...args], {
      env: { ...process.env, NODE_TEST_CONTEXT: undefined },
    });
    try {
      let stderr = '';
      const url = await new Promise<string>((resolve, reject) => {
        child.stderr.on('data', (d) => {
          stderr += d;
          const m = /serving .* at (http:\/\/\S+)\/v1/.exec(stderr);
          if (m) resolve(m[1]);
        });
        child.once('close', () => reject(new Error(`serve exited: ${stderr}`)));
      });
      const models = await (await fetch(`${url}/v1/models`)).json();
      assert.deepEqual(
        models.data.map((m: { id: string }) => m.id),
        ['needle-vamba-tiny'],
      );
      const res = await fetch(curl[1].replace('http://127.0.0.1:8000', url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: curl[2],
      });
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      // The answer questions.jsonl gives for needle-00007 (the README asks about it).
      assert.equal(body.choices[0].message.content, 'robot');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('info reads a checkpoint directory: architecture, parameters and a memory estimate', async () => {
    const r = await cli(['info', '--model', tiny, '--frames', '8', '--device', 'cpu', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    const params = Object.values(TINY_TENSORS).reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(info.architecture, 'qwen2_vl');
    assert.equal(info.parameters, params);
    assert.equal(info.layers, 2);
    // 640×360 → multiples of 28: 644×364 → 23·13 tokens per 2-frame group; 8 frames = 4 groups.
    assert.equal(info.memory_bytes.videoTokens, 4 * 23 * 13);
    assert.equal(info.memory_bytes.weights, params * 4);
    // It says which decoder a video would go through: the one LONGSHOT_FFMPEG names (CI's second pass), else the shipped one.
    assert.match(info.tools.ffmpeg.version, /\S/);
    assert.equal(info.tools.ffmpeg.path, process.env.LONGSHOT_FFMPEG ?? findTools().ffmpeg);
    // Without a usable ffmpeg the model is still described, and the problem named.
    const noFfmpeg = await cli(['info', '--model', tiny, '--json'], {
      LONGSHOT_FFMPEG: join(tmp, 'no-ffmpeg'),
    });
    assert.equal(noFfmpeg.code, 0, noFfmpeg.stderr);
    assert.match(JSON.parse(noFfmpeg.stdout).tools.error, /LONGSHOT_FFMPEG points to .*no-ffmpeg/);
    // On the CPU the process's own resident memory (Node.js, the worker threads) is part of the total.
    assert.equal(info.memory_bytes.runtime, 112 * 2 ** 20);
    assert.equal(
      info.memory_bytes.total,
      info.memory_bytes.weights +
        info.memory_bytes.videoState +
        info.memory_bytes.working +
        info.memory_bytes.runtime,
    );
    const text = await cli(['info', '--model', tiny]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /architecture\s+qwen2_vl/);
    assert.match(text.stdout, /video \(128 frames 640x360\)\s+\d+ tokens/);
    const missing = await cli(['info', '--model', join(tmp, 'nothing', 'here')]);
    assert.equal(missing.code, 4);
    const vambaDir = join(tmp, 'vamba');
    mkdirSync(vambaDir);
    await writeTinyVamba(vambaDir);
    const vamba = await cli(['info', '--model', vambaDir, '--frames', '8', '--json']);
    assert.equal(vamba.code, 0, vamba.stderr);
    const v = JSON.parse(vamba.stdout);
    assert.equal(v.architecture, 'vamba');
    assert.equal(v.parameters, countParams(vambaSpecs(parseQwen2VLConfig(TINY_VAMBA_CONFIG))));
    // Its processor caps frames at 16·28² pixels: 640×360 is scaled down by √(640·360 / 12544) = 30/7 to
    // 84×149.3, floored to multiples of 28: 84×140 → 3·5 merged tokens per 2-frame group.
    assert.equal(v.memory_bytes.videoTokens, 4 * 3 * 5);
    // A checkpoint's longshot_video_defaults set what is estimated when no size is given: the embedded needle
    // model samples 1024 frames at 112×112 (8×8 patches → 16 tokens per 2-frame group).
    const needle = JSON.parse((await cli(['info', '--model', 'models/needle-vamba-tiny', '--json'])).stdout);
    assert.deepEqual([needle.frames, needle.frame_size], [1024, '112x112']);
    assert.equal(needle.memory_bytes.videoTokens, 512 * 16);
    const given = await cli([
      'info',
      '--model',
      'models/needle-vamba-tiny',
      '--frames',
      '8',
      '--width',
      '224',
      '--json',
    ]);
    assert.deepEqual([JSON.parse(given.stdout).frames, JSON.parse(given.stdout).frame_size], [8, '224x112']);
  });

  it('download fetches a hub model into the HF cache; info then reads it by id', async () => {
    const r = await cli(['download', 'org/tiny'], hubEnv);
    assert.equal(r.code, 0, r.stderr);
    const snapshot = join(tmp, 'hf-cache', 'models--org--tiny', 'snapshots', COMMIT);
    assert.equal(r.stdout, `${snapshot}\n`);
    assert.equal(r.stderr, '', 'progress output when stderr is not a TTY');
    assert.ok(
      readFileSync(join(snapshot, 'model.safetensors')).equals(readFileSync(join(tiny, 'model.safetensors'))),
    );

    const again = await cli(['download', 'org/tiny', '--json'], hubEnv);
    assert.equal(again.code, 0);
    const json = JSON.parse(again.stdout);
    assert.equal(json.commit, COMMIT);
    assert.deepEqual(json.files, ['config.json', 'model.safetensors']);
    assert.equal(json.downloadedBytes, 0);

    const info = await cli(['info', '--model', 'org/tiny', '--json'], { ...hubEnv, HF_HUB_OFFLINE: '1' });
    assert.equal(info.code, 0, info.stderr);
    assert.equal(JSON.parse(info.stdout).dir, snapshot);
  });

  it('download errors are model errors (4) that say what to do', async () => {
    let r = await cli(['download', 'org/absent'], hubEnv);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /org\/absent: not found on the hub/);
    r = await cli(['download', 'org/tiny'], {
      ...hubEnv,
      HF_HUB_CACHE: join(tmp, 'empty-cache'),
      HF_HUB_OFFLINE: '1',
    });
    assert.equal(r.code, 4);
    assert.match(r.stderr, /HF_HUB_OFFLINE/);
    r = await cli(['download', 'not-a-repo-id'], hubEnv);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /not a Hugging Face model id: expected 'org\/name'/);
  });
});
