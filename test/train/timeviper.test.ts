/**
 * TimeViper under `longshot train`: the training forward is the inference forward (the TransV fixture with its
 * uniform and attention-guided stages), α's gradient matches finite differences, a tiny needle TimeViper with a
 * TransV stage learns on CPU what only the video tells, and its checkpoint loads through the facade and answers.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { valueAndGradAsync } from '../../src/autograd/index.js';
import '../../src/backends/cpu/index.js';
import { inspectModel } from '../../src/facade/inspect.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import type { Frame } from '../../src/media/decode.js';
import { tokenReductions } from '../../src/models/reduction.js';
import { siglipPixels } from '../../src/models/siglip/preprocess.js';
import { TimeViperModel } from '../../src/models/timeviper/model.js';
import { ParamStore } from '../../src/nn/params.js';
import '../../src/models/index.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { needleTokenizerConfig, needleTokenizerJson } from '../../src/needle/tokenizer.js';
import { getBackend } from '../../src/runtime/device.js';
import * as ops from '../../src/runtime/ops.js';
import type { Example } from '../../src/train/data.js';
import { autogradEngine } from '../../src/train/engine.js';
import { IGNORE, teacherForced } from '../../src/train/model.js';
import { NanoPrompts, TimeViperTrainModel, withNanoSpecials } from '../../src/train/timeviper.js';
import { train } from '../../src/train/trainer.js';
import { relErr } from '../helpers.js';
import { H264, makeVideo } from '../media/fixtures.js';
import { writeTimeViperTokenizer, writeTinyTimeViper } from '../models/tiny-timeviper.js';
import { assertLearns, assertResumesBitExact, TINY_TIMEVIPER_PATH, tinyRecipe } from './tiny.js';

const cpu = await getBackend('cpu');

/** The TransV fixture (9 blocks, stages uni_2 and attn_6 with TransV, 30×30 frames) as a TrainModel. */
async function transvModel(): Promise<{ model: TimeViperTrainModel; tokenizer: Tokenizer }> {
  const dir = mkdtempSync(join(tmpdir(), 'longshot-tv-'));
  writeTinyTimeViper(dir, 'transv');
  const tokenizer = await Tokenizer.fromDir(dir);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  return { model: await TimeViperTrainModel.load(dir, config, cpu, 'f32', tokenizer), tokenizer };
}

/** A nano_base example over 5 frames of 30×30 (its prompt ends the way the runner's does). */
function transvExample(tokenizer: Tokenizer): Example {
  const frames = 5;
  const side = 30;
  const image = tokenizer.tokenToId('<image>')!;
  const head = tokenizer.encode('<SPECIAL_10>System\n<SPECIAL_12>\n<SPECIAL_11>User\n', {
    addSpecialTokens: false,
  });
  const tail = tokenizer.encode('what is it ?\n<SPECIAL_12><SPECIAL_11>Assistant\n', {
    addSpecialTokens: false,
  });
  return {
    frames: Uint8Array.from({ length: frames * side * side * 3 }, (_, j) => (j * 37 + (j >> 7) * 11) % 256),
    count: frames,
    width: side,
    height: side,
    prompt: [...head, image, ...tail],
    answer: [4, 5, 6, 2],
    group: 'fixture',
  };
}

describe('TimeViper training prompts', () => {
  it('a needle tokenizer gets needle_timeviper.py’s specials, and a needle prompt its nano_base rewrite', async () => {
    // tools/reference/needle_timeviper.py wrote the fixture: the needle tokenizer with its specials added, and
    // nano_base_ids of an exported prompt row (system, user with the vision markers and a question, assistant).
    const dir = join(import.meta.dirname, '..', 'fixtures', 'timeviper', 'needle-tiny', 'tokenizer');
    const want = JSON.parse(readFileSync(join(dir, 'prompt.json'), 'utf8'));
    const files = withNanoSpecials({
      'tokenizer.json': JSON.stringify(needleTokenizerJson(1)),
      'tokenizer_config.json': JSON.stringify(needleTokenizerConfig()),
    });
    const ours = new Tokenizer(
      JSON.parse(files['tokenizer.json']!),
      JSON.parse(files['tokenizer_config.json']!),
    );
    const theirs = await Tokenizer.fromDir(dir);
    for (const t of ['<SPECIAL_10>', '<SPECIAL_11>', '<SPECIAL_12>', '<image>', '<|im_end|>'])
      assert.equal(ours.tokenToId(t), theirs.tokenToId(t), t);
    const id = (t: string) => ours.tokenToId(t)!;
    const [start, end, visionStart, visionEnd] = [
      '<|im_start|>',
      '<|im_end|>',
      '<|vision_start|>',
      '<|vision_end|>',
    ].map(id);
    const q = want.question_ids as number[];
    const row = [start, 9, end, start, 9, visionStart, visionEnd, ...q, end, start, 9];
    const prompts = new NanoPrompts(ours, id('<image>'));
    assert.deepEqual(prompts.ids(row, want.frames), want.prompt_ids);
    // A nano_base prompt with one placeholder (JSONL data) gets one per frame.
    assert.deepEqual(prompts.ids(prompts.ids(row, 1), want.frames), want.prompt_ids);
    assert.throws(() => prompts.ids([start, 9, end], 2), /neither <image> placeholders nor the needle form/);
  });
});

describe('TimeViper training forward', () => {
  it('its answer rows are the inference prefill’s logits (drops, TransV, gates as ops of α)', async () => {
    const { model, tokenizer } = await transvModel();
    using _ = model;
    const ex = transvExample(tokenizer);
    const fwd = model.forward();
    const all = await fwd.logits(ex);
    fwd[Symbol.dispose]();
    assert.deepEqual(all.shape, [ex.prompt.length + ex.answer.length - 1, 320]);
    // Row P − 1 predicts the first answer token: the prefill of the prompt alone (the runner's path, gates read
    // as numbers) gives it — the attention-guided stage's query is the last prompt token in both, as in the
    // official training, and the answer tokens after it change nothing before them.
    const store = new Map([...model.weights].map(([n, w]) => [n, w.reshape(w.shape)]));
    using m = await TimeViperModel.fromParams(model.config, new ParamStore(store));
    const image = model.config.imageTokenId;
    const prompt = ex.prompt.flatMap((t) => (t === image ? new Array(ex.count).fill(image) : [t]));
    using pixels = ops.tensor(
      cpu,
      siglipPixels(
        Array.from({ length: ex.count }, (_, t) => ({
          width: 30,
          height: 30,
          data: ex.frames.subarray(t * 2700, (t + 1) * 2700),
        })),
        30,
      ),
      [ex.count, 3, 30, 30],
    );
    using visual = await m.encode(pixels);
    const vocab = 320;
    const rows = (await all.data()) as Float32Array;
    using session = m.session(512);
    using want = await session.prefill({ ids: prompt, visual });
    assert.ok(session.kept.at(-1)!.length < ex.count * 16, 'the fixture’s stages drop tokens');
    const r = ex.prompt.length - 1;
    const got = rows.subarray(r * vocab, (r + 1) * vocab);
    const w = (await want.data()) as Float32Array;
    const scale = Math.max(...w.map(Math.abs));
    const err = Math.max(...got.map((v, i) => Math.abs(v - w[i])));
    assert.ok(err <= 1e-4 * scale, `row ${r}: ${err} vs scale ${scale}`);
    all.dispose();
  });

  it('its answer rows are PyTorch’s (needle_timeviper.py’s model on the needle-tiny fixture)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'longshot-tv-'));
    const fixture = join(import.meta.dirname, '..', 'fixtures', 'timeviper', 'needle-tiny');
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(fixture, f), join(dir, f));
    writeTimeViperTokenizer(dir, 41);
    const tokenizer = await Tokenizer.fromDir(dir);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    using model = await TimeViperTrainModel.load(dir, config, cpu, 'f32', tokenizer);
    await using ref = await SafetensorsFile.open(join(fixture, 'reference.safetensors'));
    const raw = await ref.read('frames');
    const ids = Array.from((await ref.read('input_ids')).data as BigInt64Array, Number);
    const want = (await ref.read('logits')).data as Float32Array; // [ids, vocab], row j predicts ids[j + 1]
    const [frames, height, width] = raw.shape;
    // The fixture's prompt with one placeholder (made one per frame) and its last three ids as the answer.
    const first = ids.indexOf(41);
    const ex: Example = {
      frames: raw.data as Uint8Array,
      count: frames,
      width,
      height,
      prompt: [...ids.slice(0, first + 1), ...ids.slice(first + frames, -3)],
      answer: ids.slice(-3),
      group: 'fixture',
    };
    const fwd = model.forward();
    using logits = await fwd.logits(ex);
    fwd[Symbol.dispose]();
    const got = (await logits.data()) as Float32Array;
    const vocab = 40;
    for (let a = 0; a < 3; a++) {
      const r = ex.prompt.length - 1 + a;
      const w = want.subarray((ids.length - 4 + a) * vocab, (ids.length - 3 + a) * vocab);
      assert.ok(relErr(got.subarray(r * vocab, (r + 1) * vocab), w) <= 1e-5, `answer row ${a}`);
    }
  });

  it('α’s gradient (through tanh(α) in the forward) matches central differences', async () => {
    const { model, tokenizer } = await transvModel();
    using _ = model;
    const ex = transvExample(tokenizer);
    const alpha = model.weights.get('llm_backbone.llm.backbone.alpha')!;
    const { targets } = teacherForced(ex);
    assert.ok(targets.some((t) => t !== IGNORE));
    const loss = async () => {
      using fwd = model.forward();
      const logits = await fwd.logits(ex);
      const t = ops.tensor(cpu, targets, [targets.length], 'i32');
      return autogradEngine.crossEntropy(logits, t, { ignoreIndex: IGNORE });
    };
    const { value, grads } = await valueAndGradAsync(loss, [alpha]);
    const g = Array.from(await grads[0].data());
    grads[0].dispose();
    const base = Float32Array.from(await alpha.data());
    const at = async (i: number, h: number) => {
      const v = Float32Array.from(base);
      v[i] += h;
      cpu.upload(alpha, v);
      const l = await valueAndGradAsync(loss, []);
      return l.value;
    };
    const fd: number[] = [];
    for (let i = 0; i < base.length; i++) fd.push(((await at(i, 1e-3)) - (await at(i, -1e-3))) / 2e-3);
    cpu.upload(alpha, base);
    assert.equal((await valueAndGradAsync(loss, [])).value, value, 'α restored');
    const scale = Math.max(...fd.map(Math.abs));
    assert.ok(scale > 1e-3, `the loss depends on α: ${fd}`);
    for (let i = 0; i < g.length; i++)
      assert.ok(Math.abs(g[i] - fd[i]) <= 2e-2 * scale, `α[${i}]: ${g[i]} vs finite differences ${fd[i]}`);
  });
});

describe('longshot train on a tiny needle TimeViper', () => {
  it('learns what only the video tells, and its checkpoint loads through the facade and answers', async () => {
    const live: number[] = [];
    const { report, items } = await assertLearns(
      tinyRecipe(() => {}, TINY_TIMEVIPER_PATH),
      {
        onStep: () => live.push(cpu.memory().current),
      },
    );
    // The awaiting forward leaves nothing behind from step to step (valueAndGradAsync frees what it made).
    assert.equal(live.at(-1), live[0], 'memory held after a step');

    // The checkpoint: the official layout with α, opened as `longshot ask --model <dir>` opens it.
    const dir = report.checkpoint;
    const ck = await Checkpoint.open(dir);
    assert.ok(ck.names().includes('llm_backbone.llm.backbone.alpha'));
    assert.ok(ck.names().includes('projector.projector.0.weight'));
    await ck.close();
    const summary = await inspectModel(dir);
    assert.equal(summary.family.name, 'timeviper');
    const runner = await summary.checkpoint.load(cpu, 'tiny');
    const tok = await Tokenizer.fromDir(dir);
    let right = 0;
    try {
      for (const ex of items) {
        const side = ex.width;
        const frames: Frame[] = Array.from({ length: ex.count }, (_, i) => ({
          index: i,
          timestampSec: i,
          width: side,
          height: side,
          data: ex.frames.subarray(i * side * side * 3, (i + 1) * side * side * 3),
        }));
        async function* batches() {
          yield frames;
        }
        // As `longshot ask --reduce transv`: the prefill runs the drop stage it was trained with.
        const video = await runner.encode(batches(), {
          kind: 'video',
          timestampsSec: frames.map((f) => f.timestampSec),
          sampling: { sampling: 'uniform', frames: 8, fps: 1, maxEdge: 56, minEdge: 56 },
          reduction: { reduction: tokenReductions().find((r) => r.name === 'transv')!, keep: 0 },
        });
        // The question as text: the needle prompt's words between <|vision_end|> and <|im_end|>.
        const ve = ex.prompt.indexOf(tok.tokenToId('<|vision_end|>')!);
        const q = ex.prompt.indexOf(tok.tokenToId('<|im_end|>')!, ve);
        const question = tok.decode(ex.prompt.slice(ve + 1, q), { skipSpecialTokens: false });
        const gen = runner.generate([{ role: 'user', content: question }], video, { maxNewTokens: 6 });
        const pieces: string[] = [];
        let r = await gen.next();
        for (; !r.done; r = await gen.next()) pieces.push(r.value);
        video.dispose();
        const want = tok.decode(ex.answer.slice(0, -1), { skipSpecialTokens: true });
        if (pieces.join('').trim() === want.trim()) right++;
      }
    } finally {
      runner.dispose();
    }
    assert.ok(right >= 6, `the loaded checkpoint answers ${right} of ${items.length} pool askings right`);
  });
});

describe('resuming a TimeViper run', () => {
  it('from its checkpoint (the official layout, the tokenizer with its specials) is bit-exact', async () => {
    await assertResumesBitExact((j) => {
      j.schedule = { steps: 4, warmup: 1, minRatio: 0.1 };
      j.output = { dir: 'x', checkpointEvery: 2, logEvery: 1, evalEvery: 1000 };
      delete j.data.eval;
    }, TINY_TIMEVIPER_PATH);
  });
});

describe('recipes/timeviper.json', () => {
  it('trains the projector and the TransV gates α of a checkpoint on JSONL videos, nothing else', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'longshot-tv-'));
    writeTinyTimeViper(dir, 'transv');
    await makeVideo(join(dir, 'clip.mp4'), { width: 30, height: 30, frames: 8, fps: 4, encode: H264 });
    const line = {
      video: 'clip.mp4',
      conversations: [
        { from: 'human', value: '<video>\nwhat is it?' },
        { from: 'gpt', value: 'it is' },
      ],
    };
    writeFileSync(join(dir, 'train.jsonl'), `${JSON.stringify(line)}\n`);
    const recipe = tinyRecipe(
      (j) => {
        j.model.from = dir;
        j.data.train = { kind: 'jsonl', path: join(dir, 'train.jsonl'), frames: 4, size: 30 };
        j.schedule = { steps: 2, warmup: 0 };
        j.batch = { videos: 1 };
        j.precision = 'f32';
        j.optimizer.lr = 0.01;
      },
      join(import.meta.dirname, '..', '..', 'recipes', 'timeviper.json'),
    );
    const notes: string[] = [];
    const report = await train({ recipe, backend: cpu, engine: autogradEngine, note: (l) => notes.push(l) });
    assert.ok(Number.isFinite(report.finalLoss), `loss ${report.finalLoss}`);
    assert.ok(!notes.some((l) => l.includes('stays fixed')), notes.join('\n'));
    const before = await Checkpoint.open(dir);
    const after = await Checkpoint.open(report.checkpoint);
    const changed = async (name: string) => {
      const a = (await before.read(name)).data as Float32Array;
      const b = (await after.read(name)).data as Float32Array;
      return a.some((v, i) => v !== b[i]);
    };
    try {
      assert.ok(await changed('llm_backbone.llm.backbone.alpha'), 'α trains');
      assert.ok(await changed('projector.projector.2.weight'), 'the projector trains');
      for (const frozen of [
        'llm_backbone.llm.lm_head.weight',
        'llm_backbone.llm.backbone.merge_modules.0.q_proj.weight',
        'vision_backbone.featurizer.blocks.0.attn.qkv.weight',
      ])
        assert.ok(!(await changed(frozen)), `${frozen} stays`);
    } finally {
      await before.close();
      await after.close();
    }
  });
});
