/** The CLI over Nemotron-H: `info` on Nano-9B-v2's config alone and on a tiny checkpoint, `chat` without a video. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import '../../src/backends/index.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { NemotronHForCausalLM } from '../../src/models/nemotron_h/index.js';
import { writeTinyNemotronH } from '../models/tiny-nemotron-h.js';

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, NODE_TEST_CONTEXT: undefined },
  });

/** NVIDIA-Nemotron-Nano-9B-v2's config.json, from the values on its model card (docs/research-nemotron-h.md §2). */
const NANO_9B_V2 = 'test/fixtures/configs/nemotron-nano-9b-v2/config.json';

describe('longshot CLI over Nemotron-H', () => {
  let tmp: string;
  let tiny: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'longshot-nemotron-cli-'));
    tiny = join(tmp, 'tiny');
    mkdirSync(tiny);
    writeTinyNemotronH(tiny);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('info on a directory holding only Nano-9B-v2’s config.json: 56 layers, 27 M / 4 * / 25 -, 8,888,227,328 parameters', () => {
    const dir = join(tmp, 'nano');
    mkdirSync(dir);
    copyFileSync(NANO_9B_V2, join(dir, 'config.json'));
    const r = cli(['info', '--model', dir, '--context', '32768', '--device', 'cuda', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.equal(info.architecture, 'nemotron_h');
    assert.equal(info.layers, 56);
    assert.equal(info.hidden_size, 4480);
    assert.equal(info.details.blocks, '27 M (Mamba-2) / 4 * (attention) / 25 - (MLP)');
    // The sum over the card's shapes (docs/research-nemotron-h.md §2), flagged as counted from the config.
    assert.equal(info.parameters, 8_888_227_328);
    assert.equal(info.parameters_from, 'config');
    assert.equal(info.memory_bytes.weights, 8_888_227_328 * 2);
    assert.equal(info.context_tokens, 32768);
    // K/V: 4 attention layers × K and V × 8 heads × 128 × 2 bytes = 16 KiB per token → 512 MiB at 32k;
    // Mamba: 27 × (128·80·128 f32 SSM + 3 × 12288 bf16 conv window).
    const mamba = 27 * (128 * 80 * 128 * 4 + 3 * 12288 * 2);
    assert.equal(info.memory_bytes.videoState, 512 * 2 ** 20 + mamba);
    assert.equal(info.memory_bytes.videoTokens, 0);
    const text = cli(['info', '--model', dir, '--context', '8192', '--device', 'cuda']);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /parameters\s+8\.888 B \(8888227328, from config\.json\)/);
    assert.match(text.stdout, /context state \(8192 tokens\)\s+0\.\d\d GiB/);
    assert.doesNotMatch(text.stdout, /video/);
  });

  it('info on the tiny checkpoint counts parameters from its weights', () => {
    const r = cli(['info', '--model', tiny, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.equal(info.parameters_from, 'weights');
    assert.equal(info.layers, 10);
    assert.equal(info.details.blocks, '5 M (Mamba-2) / 1 * (attention) / 4 - (MLP)');
    // Without --context: the config's max_position_embeddings.
    assert.equal(info.context_tokens, 4096);
  });

  it('chat answers a text message without a video; --json carries the answer and usage', async () => {
    const r = cli([
      'chat',
      'what is the colour of the sky ?',
      '--model',
      tiny,
      '--max-new-tokens',
      '6',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    const tok = await Tokenizer.fromDir(tiny);
    const ids = tok.encode(
      tok.applyChatTemplate([{ role: 'user', content: 'what is the colour of the sky ?' }], {
        addGenerationPrompt: true,
      }),
      { addSpecialTokens: false },
    );
    using lm = await NemotronHForCausalLM.load(tiny);
    const tokens: number[] = [];
    for await (const t of lm.generate(ids, { maxNewTokens: 6 })) tokens.push(t.token);
    assert.equal(out.architecture, 'nemotron_h');
    assert.equal(out.answer, tok.decode(tokens, { skipSpecialTokens: true }));
    assert.deepEqual(out.usage, {
      promptTokens: ids.length,
      videoTokens: 0,
      completionTokens: 6,
      totalTokens: ids.length + 6,
    });
    const plain = cli(['chat', 'what is the colour of the sky ?', '--model', tiny, '--max-new-tokens', '6']);
    assert.equal(plain.stdout, `${out.answer}\n`);
  });

  it('ask with a video on a text model is a usage error (2) that says to ask without one', () => {
    const clip = join(tmp, 'clip.mp4');
    writeFileSync(clip, 'not read');
    const r = cli(['ask', clip, 'what?', '--model', tiny]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /a text model: ask without a video/);
  });
});
