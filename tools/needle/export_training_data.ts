/**
 * Exports needle-in-a-haystack training data for the PyTorch trainer (tools/reference/train_needle.py):
 * rendered RGB frames (uint8 [T, H, W, 3]) and the tokenized Vamba-style prompt and answer of each sample,
 * in safetensors shards. Rendering and tokenizing here, in the same code that serves the model, means training
 * sees exactly what inference sees; the trainer applies the Hugging Face Qwen2-VL processor, which our own
 * processor matches exactly (test/models/qwen2vl_processor.test.ts).
 *
 *   node --import tsx tools/needle/export_training_data.ts --out /tmp/needle --count 4000 --frames 16,24,32,48,64 --seed 1
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Tokenizer } from '../../src/io/index.js';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { renderFrame } from '../../src/needle/render.js';
import { makeSample, mcqPrompt, TASKS } from '../../src/needle/tasks.js';
import { needleTokenizerConfig, needleTokenizerJson, SYSTEM_PROMPT } from '../../src/needle/tokenizer.js';
import { Random } from '../../src/util/random.js';

const { values: a } = parseArgs({
  options: {
    out: { type: 'string' },
    count: { type: 'string', default: '2000' },
    frames: { type: 'string', default: '16,32,64' },
    size: { type: 'string', default: '112' },
    seed: { type: 'string', default: '0' },
    'needle-frames': { type: 'string', default: '2' },
    'per-shard': { type: 'string', default: '256' },
  },
});
if (!a.out) throw new Error('--out is required');
const count = Number(a.count);
const lengths = a.frames!.split(',').map(Number);
const side = Number(a.size);
const perShard = Number(a['per-shard']);
const tok = new Tokenizer(needleTokenizerJson() as never, needleTokenizerConfig() as never);
const r = new Random(Number(a.seed));
mkdirSync(a.out, { recursive: true });

/** The official Vamba prompt shape (research/vamba.md §4.4) with our system prompt. */
const prompt = (question: string) =>
  `<|im_start|>system\n${SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n<|vision_start|><|vision_end|>${question}<|im_end|>\n<|im_start|>assistant\n`;

const meta: object[] = [];
for (let shard = 0; shard * perShard < count; shard++) {
  const tensors: Record<string, { dtype: 'U8' | 'I32'; shape: number[]; data: Uint8Array | Int32Array }> = {};
  for (let i = shard * perShard; i < Math.min(count, (shard + 1) * perShard); i++) {
    const s = makeSample(r.int(0, 2 ** 31), `train-${i}`, {
      frames: r.pick(lengths),
      fps: 2,
      width: side,
      height: side,
      needleFrames: Number(a['needle-frames']),
      task: r.pick(TASKS),
    });
    const frames = new Uint8Array(s.frames * side * side * 3);
    for (let t = 0; t < s.frames; t++) frames.set(renderFrame(s, t).data, t * side * side * 3);
    // Half the samples ask for the short answer, half for the option letter.
    const mcq = r.next() < 0.5;
    const ids = tok.encode(prompt(mcq ? mcqPrompt(s) : s.question));
    const answer = tok.encode(`${mcq ? s.answerLetter : s.answer}<|im_end|>`);
    tensors[`${i}.frames`] = { dtype: 'U8', shape: [s.frames, side, side, 3], data: frames };
    tensors[`${i}.input_ids`] = { dtype: 'I32', shape: [ids.length], data: Int32Array.from(ids) };
    tensors[`${i}.answer_ids`] = { dtype: 'I32', shape: [answer.length], data: Int32Array.from(answer) };
    meta.push({ i, shard, task: s.task, frames: s.frames, mcq, answer: s.answer, letter: s.answerLetter });
  }
  await saveSafetensors(join(a.out, `shard-${String(shard).padStart(5, '0')}.safetensors`), tensors);
  process.stderr.write(`\rexported ${Math.min(count, (shard + 1) * perShard)}/${count}`);
}
writeFileSync(join(a.out, 'index.json'), JSON.stringify({ count, side, samples: meta }));
process.stderr.write('\n');
