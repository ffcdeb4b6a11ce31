import '../../src/backends/cpu/index.js';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { evaluateNeedle, readAllFrames, readQuestions, renderedFrames } from '../../src/needle/eval.js';

const VAMBA = 'models/needle-vamba-tiny';
const QWEN = 'models/needle-qwen2vl-tiny';
const MAMBAMIA = 'models/needle-mambamia-tiny';
const EXAMPLES = 'examples/needle';
const FILES = [
  'config.json',
  'model.safetensors',
  'tokenizer.json',
  'tokenizer_config.json',
  'generation_config.json',
  'preprocessor_config.json',
];

test('the shipped models are ordinary Hugging Face model directories within the size budget', () => {
  let bytes = 0;
  for (const dir of [VAMBA, QWEN, MAMBAMIA]) {
    assert.deepEqual(readdirSync(dir).sort(), [...FILES].sort());
    for (const f of FILES) bytes += statSync(join(dir, f)).size;
  }
  assert.ok(bytes <= 20 * 2 ** 20, `${bytes} bytes`);
  const vamba = JSON.parse(readFileSync(join(VAMBA, 'config.json'), 'utf8'));
  assert.equal(vamba.vision_mamba_mixer_config.enable, true);
  assert.equal(vamba.use_alpha_balancing, true);
  assert.equal(
    JSON.parse(readFileSync(join(QWEN, 'config.json'), 'utf8')).vision_mamba_mixer_config,
    undefined,
  );
  const tstar = JSON.parse(readFileSync(join(MAMBAMIA, 'config.json'), 'utf8'));
  assert.equal(tstar.model_type, 'tstar');
  assert.equal(tstar.mm_projector_config.mambamia_gated_aggregation, true);
});

for (const [model, architecture, tokensPerFrame] of [
  [VAMBA, 'vamba', 8],
  [MAMBAMIA, 'tstar', 1],
] as const)
  test(`the shipped ${model} answers the example videos correctly through the TypeScript stack`, async () => {
    // Expected answers come from the generator (questions.jsonl), not from the model.
    const questions = await readQuestions(join(EXAMPLES, 'questions.jsonl'));
    const report = await evaluateNeedle({ model, data: EXAMPLES });
    assert.equal(report.architecture, architecture);
    assert.equal(report.total, 2 * questions.length);
    for (const item of report.items)
      assert.ok(
        item.correct,
        `${item.id} (${item.task}, ${item.form}): expected ${item.expected}, got '${item.output}'`,
      );
    const short = report.items.filter((i) => i.form === 'short').map((i) => i.output.trim());
    assert.deepEqual(
      short,
      questions.map((q) => q.answer),
    );
    // The examples are 32-frame videos: Vamba keeps 8 tokens a frame, MambaMia's compressor one.
    for (const length of Object.values(report.byLength))
      assert.equal(length.videoTokens, 32 * tokensPerFrame);
  });

test('--render draws the MP4s again: the same frames up to compression, the same answers', async () => {
  const questions = await readQuestions(join(EXAMPLES, 'questions.jsonl'));
  for (const q of questions) {
    const drawn = renderedFrames(q);
    const decoded = await readAllFrames(join(EXAMPLES, q.video));
    assert.equal(drawn.length, decoded.length, q.id);
    let diff = 0;
    let n = 0;
    for (const [t, f] of drawn.entries()) {
      assert.equal(f.width, decoded[t].width);
      assert.equal(f.height, decoded[t].height);
      for (let i = 0; i < f.data.length; i++) diff += Math.abs(f.data[i] - decoded[t].data[i]);
      n += f.data.length;
    }
    // H.264 at crf 12 with 4:2:0 chroma: a few levels per value on average, never a different picture.
    assert.ok(diff / n < 6, `${q.id}: mean |drawn − decoded| = ${(diff / n).toFixed(2)}`);
  }
  const report = await evaluateNeedle({ model: VAMBA, data: EXAMPLES, frames: 'render' });
  assert.equal(report.correct, report.total);
  assert.throws(() => renderedFrames({ ...questions[0], scene: undefined as never }), /no scene to render/);
});
