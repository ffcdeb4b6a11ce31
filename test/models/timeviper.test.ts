/**
 * TimeViper's pieces around the model: the nano_base prompts (written out by hand from conversation.py and the
 * evaluation datasets), the pdrop_type strings, torch.linspace's CUDA integer semantics for the uniform stage,
 * the family (recognition, description, memory by stage), and the runner end to end on the tiny TransV fixture
 * with a WordPiece tokenizer holding Nemotron-Nano's specials and `<image>` at the config's id.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { ModelError, UsageError } from '../../src/errors.js';
import type { Frame } from '../../src/media/decode.js';
import type { EncodedVideo, ModelRunner } from '../../src/models/family.js';
import { tokenReductions } from '../../src/models/reduction.js';
import { familyOf } from '../../src/models/registry.js';
import { parseTimeViperConfig } from '../../src/models/timeviper/config.js';
import { timeViper } from '../../src/models/timeviper/family.js';
import { parsePdropType, uniformKeep } from '../../src/models/timeviper/pdrop.js';
import { groundingMessage, mcqMessage, nanoBasePrompt } from '../../src/models/timeviper/prompt.js';
import { loadTimeViperRunner } from '../../src/models/timeviper/runner.js';
import { tokensPerBlock } from '../../src/models/timeviper/size.js';
import { writeTinyTimeViper } from './tiny-timeviper.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'timeviper', 'transv');
const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));
const dropConfig = JSON.parse(readFileSync(join(FIXTURE, '..', 'drop', 'config.json'), 'utf8'));

describe('TimeViper prompts', () => {
  it('nano_base with frames, a multiple-choice question and the answer prompt', () => {
    const user = mcqMessage('What colour is the sky?', ['A. blue', 'B. red']);
    assert.equal(
      user,
      'What colour is the sky?\nA. blue\nB. red\nPlease provide your answer by stating the letter followed by the full option.',
    );
    assert.deepEqual(nanoBasePrompt([{ role: 'user', content: user }], 3), {
      text: `<SPECIAL_10>System\n<SPECIAL_12>\n<SPECIAL_11>User\n<image><image><image>${user}\n<SPECIAL_12><SPECIAL_11>Assistant\n`,
      answerPrompt: 'Best Option: (',
    });
  });

  it('a free question, an earlier exchange, a system text and an <image> already placed', () => {
    const { text, answerPrompt } = nanoBasePrompt(
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Look: <image> what is it?' },
        { role: 'assistant', content: 'A cat.' },
        { role: 'user', content: 'Sure?' },
      ],
      2,
    );
    assert.equal(
      text,
      '<SPECIAL_10>System\nBe brief.\n<SPECIAL_12>\n<SPECIAL_11>User\nLook: <image><image> what is it?\n<SPECIAL_12>' +
        '<SPECIAL_11>Assistant\nA cat.\n<SPECIAL_12><SPECIAL_11>User\nSure?\n<SPECIAL_12><SPECIAL_11>Assistant\n',
    );
    assert.equal(answerPrompt, null);
    assert.throws(() => nanoBasePrompt([{ role: 'assistant', content: 'x' }], 1), UsageError);
  });

  it('the grounding message', () => {
    assert.match(
      groundingMessage(30, 8, 'a man runs'),
      /^The video lasts for 30 seconds, and 8 frames are uniformly sampled from it\. Localize the visual content described by the given textual query 'a man runs' in the video/,
    );
  });
});

describe('pdrop_type', () => {
  it("parses the paper's TransV setting and drop-only stages", () => {
    assert.deepEqual(parsePdropType('uni_7_0.5-attn_39_0.1', 'CrossAttention'), [
      { kind: 'uni', layer: 7, ratio: 0.5, transfer: true },
      { kind: 'attn', layer: 39, ratio: 0.1, transfer: true },
    ]);
    assert.deepEqual(parsePdropType('unidrop_7_0.5-attn_39_0.1', 'CrossAttention')[0].transfer, false);
    assert.deepEqual(parsePdropType('uni_14_0.8', 'no_merge')[0].transfer, false);
    assert.deepEqual(parsePdropType(null, 'no_merge'), []);
  });

  it('refuses malformed strings, unordered stages and unknown merge modules', () => {
    assert.throws(() => parsePdropType('uni_7', 'no_merge'), /"uni_7" is not type_layer_ratio/);
    assert.throws(() => parsePdropType('max_7_0.5', 'no_merge'), ModelError);
    assert.throws(() => parsePdropType('uni_9_0.5-attn_7_0.2', 'no_merge'), /rising layer/);
    assert.throws(() => parsePdropType('uni_7_0.5', 'Mean'), /merge_module "Mean"/);
  });

  it('an attention-guided stage must sit on an attention block', () => {
    const bad = { ...config, pdrop_type: 'uni_2_0.5-attn_5_0.25' };
    assert.throws(() => parseTimeViperConfig(bad), /block 5, which is not an attention block/);
  });

  it('uniform stages keep torch.linspace(0, n−1, k).long() as the CUDA kernel computes it', () => {
    assert.deepEqual(
      uniformKeep(64, 22),
      Array.from({ length: 22 }, (_, i) => 3 * i),
    );
    // float32 step 8/7 = 1.14285719…: the first half from the start (0..3), the second from the end
    // (8 − 3·step = 4.57 → 4, …, 8 − 0 = 8); torch < 2.1's CPU integer step gave 0..7.
    assert.deepEqual(uniformKeep(9, 8), [0, 1, 2, 3, 4, 5, 6, 8]);
    assert.deepEqual(uniformKeep(5, 1), [0]);
    assert.deepEqual(uniformKeep(5, 0), []);
  });
});

describe('TimeViper family', () => {
  it('recognises the config, describes it and counts tokens per block by stage', async () => {
    const files = { dir: FIXTURE, config, tensorNames: [] };
    assert.equal(familyOf(files), timeViper);
    const opened = await timeViper.open(files, { parameters: 1, weightBytes: 4, dtype: 'F32' });
    assert.equal(opened.describe().layers, 9);
    const c = parseTimeViperConfig(config);
    // 10 frames = 160 vision tokens: blocks 0–1 see all, 2–5 keep ⌊160·0.34375⌋ = 55, 6–8 keep 40.
    assert.deepEqual(tokensPerBlock(c, 10, 12), [172, 172, 67, 67, 67, 67, 52, 52, 52]);
    const m = opened.estimateMemory({ frames: 10, width: 30, height: 30, activationBytes: 4 });
    assert.equal(m.videoTokens, 160);
    assert.ok(m.total > m.weights);
  });
});

describe('an official checkpoint', () => {
  it("reads the training's nano LLM config with the official defaults", () => {
    const nano = {
      ...config.llm_config,
      model_type: 'nano',
      use_pdrop: true,
      pdrop_type: 'uni_2_0.5',
      merge_module: 'CrossAttention',
    };
    const files = { dir: FIXTURE, config: nano, tensorNames: [] };
    assert.equal(familyOf(files), timeViper);
    const c = parseTimeViperConfig(nano);
    assert.equal(c.vision.hidden_size, 1152);
    assert.equal(c.vision.num_hidden_layers, 27);
    assert.equal(c.featureBlock, 25);
    assert.equal(c.tokensPerFrame, 16);
    assert.equal(c.imageTokenId, -1);
    assert.equal(c.llm.hidden_size, 32);
    assert.deepEqual(c.stages, [{ kind: 'uni', layer: 2, ratio: 0.5, transfer: true }]);
  });
});

describe('TimeViper runner', () => {
  const dir = mkdtempSync(join(tmpdir(), 'timeviper-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (imageId: number) => writeTinyTimeViper(dir, 'transv', imageId);
  const src = (c = parseTimeViperConfig(config)) => ({
    id: 'tiny',
    dir,
    config: c,
    weights: { parameters: 1, weightBytes: 4, dtype: 'F32' },
  });
  const frames = (n: number): Frame[] =>
    Array.from({ length: n }, (_, i) => ({
      index: i,
      timestampSec: i,
      width: 40,
      height: 24,
      data: Uint8Array.from({ length: 40 * 24 * 3 }, (_, j) => (j * 37 + i * 101) % 256),
    }));
  async function* batches(fs: Frame[]) {
    yield fs.slice(0, 3);
    yield fs.slice(3);
  }

  it('encodes frames in batches and answers with the frames as <image> tokens', async () => {
    write(310);
    const runner = await loadTimeViperRunner(src(), cpuBackend());
    try {
      const progress: [number, number | undefined][] = [];
      const video = await runner.encode(batches(frames(5)), {
        kind: 'video',
        timestampsSec: [0, 1, 2, 3, 4],
        sampling: { sampling: 'first-seconds', frames: 8, fps: 1, maxEdge: 64, minEdge: 8 },
        onFrames: (done, tokens) => progress.push([done, tokens]),
      });
      assert.equal(video.tokens, 5 * 16);
      // Progress per batch: frames encoded and their tokens (16 each), for the web UI's encoding bar.
      assert.deepEqual(progress, [
        [3, 48],
        [5, 80],
      ]);
      const gen = runner.generate([{ role: 'user', content: 'what is it?' }], video, { maxNewTokens: 3 });
      let r = await gen.next();
      while (!r.done) r = await gen.next();
      assert.equal(r.value.usage.videoTokens, 80);
      assert.ok(r.value.usage.completionTokens >= 1 && r.value.usage.completionTokens <= 3);
      video.dispose();
    } finally {
      runner.dispose();
    }
  });

  /** Runs a question to the end: its text pieces and its summary. */
  async function answer(runner: ModelRunner, video: EncodedVideo, relevance: boolean) {
    const gen = runner.generate([{ role: 'user', content: 'what is it?' }], video, {
      maxNewTokens: 3,
      relevance,
    });
    const pieces: string[] = [];
    let r = await gen.next();
    for (; !r.done; r = await gen.next()) pieces.push(r.value);
    return { text: pieces.join(''), summary: r.value };
  }
  /** Five frames encoded for the checkpoint's drop stages (`--reduce transv`). */
  const encodeFive = (runner: ModelRunner) =>
    runner.encode(batches(frames(5)), {
      kind: 'video',
      timestampsSec: [0, 1, 2, 3, 4],
      sampling: { sampling: 'first-seconds', frames: 8, fps: 1, maxEdge: 64, minEdge: 8 },
      reduction: { reduction: tokenReductions().find((r) => r.name === 'transv')!, keep: 0 },
    });

  it('relevance with TransV: every token’s worth lands on some frame (80 in all), the answer unchanged', async () => {
    write(310);
    const runner = await loadTimeViperRunner(src(), cpuBackend());
    try {
      const video = await encodeFive(runner);
      const plain = await answer(runner, video, false);
      const traced = await answer(runner, video, true);
      video.dispose();
      assert.equal(traced.text, plain.text);
      assert.equal(plain.summary.videoAttention, undefined);
      const mass = traced.summary.videoAttention!;
      assert.equal(mass.length, 5);
      // 80 tokens → 27 kept by the uniform stage (53 transferred) → 20 kept by attention (7 transferred).
      assert.ok(Math.abs(mass.reduce((a, b) => a + b, 0) - 80) < 1e-6, `${mass}`);
      assert.ok(mass.every((m) => m >= 0));
    } finally {
      runner.dispose();
    }
  });

  it('relevance without transfer: each frame’s tokens that reach the last layers (20 of 80)', async () => {
    writeTinyTimeViper(dir, 'drop');
    const runner = await loadTimeViperRunner(src(parseTimeViperConfig(dropConfig)), cpuBackend());
    try {
      const video = await encodeFive(runner);
      const mass = (await answer(runner, video, true)).summary.videoAttention!;
      video.dispose();
      assert.equal(
        mass.reduce((a, b) => a + b, 0),
        20,
      );
      // Survivors are whole tokens, and only those the uniform stage kept (torch.linspace(0, 79, 27)) can be.
      const uniform = uniformKeep(80, 27);
      mass.forEach((m, f) => {
        assert.ok(Number.isInteger(m), `frame ${f}: ${m}`);
        assert.ok(m <= uniform.filter((t) => Math.floor(t / 16) === f).length, `frame ${f}: ${m}`);
      });
    } finally {
      runner.dispose();
    }
  });

  it("refuses a tokenizer whose <image> is not config.json's image_token_index", async () => {
    write(311);
    await assert.rejects(
      loadTimeViperRunner(src(), cpuBackend()),
      /<image> is 311, config\.json's image_token_index 310/,
    );
  });
});
