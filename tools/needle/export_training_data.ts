/**
 * Exports needle-in-a-haystack training data for the PyTorch trainer (tools/reference/train_needle.py):
 * rendered RGB frames (uint8 [T, H, W, 3]) and the tokenized Vamba-style prompt and answer of each sample,
 * in safetensors shards. Rendering and tokenizing here, in the same code that serves the model, means training
 * sees exactly what inference sees; the trainer applies the Hugging Face Qwen2-VL processor, which our own
 * processor matches exactly (test/models/qwen2vl_processor.test.ts).
 *
 *   node --import tsx tools/needle/export_training_data.ts --out /tmp/needle --count 4000 --frames 16,24,32,48,64 --seed 1
 *
 * `--data v1` (the default) is the data the shipped models were trained on: the generator's sentences, scenes
 * and 112×112 frames, tokenizer version 1. `--data v2` draws from src/needle/variety.ts (varied wordings,
 * "not shown" and 0, other footage, other frame sizes resized to --size, other needle durations) and
 * tokenizes with version 2; --phrasing, --unanswerable, --scenes, --tasks and --geometry (plain: 112×112
 * frames, 2-frame needles, 2 fps) narrow it for held-out sets; --variants askings per video; --tokenizer
 * overrides the tokenizer version.
 * Frames are stored raw in the shards, so the trainer memory-maps them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { PHRASINGS } from '../../src/needle/phrasings.js';
import { makeSample, type SampleOptions, TASKS, type Task } from '../../src/needle/tasks.js';
import { needleAsking, needleFrames, needleTokenizer } from '../../src/needle/training.js';
import { PLAIN_VARIETY, TRAINING_VARIETY, type Variety, varietyOptions } from '../../src/needle/variety.js';
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
    data: { type: 'string', default: 'v1' },
    phrasing: { type: 'string', default: TRAINING_VARIETY.phrasing },
    unanswerable: { type: 'string', default: String(TRAINING_VARIETY.unanswerable) },
    scenes: { type: 'string', default: TRAINING_VARIETY.scenes },
    tasks: { type: 'string', default: TASKS.join(',') },
    variants: { type: 'string', default: '4' },
    geometry: { type: 'string', default: 'varied' },
    tokenizer: { type: 'string' },
  },
});
if (!a.out) throw new Error('--out is required');
if (a.data !== 'v1' && a.data !== 'v2') throw new Error(`--data must be v1 or v2, got ${a.data}`);
const v2 = a.data === 'v2';
// The tokenizer version goes with the data version unless given (v1 data tokenized anew for v2 models' fixtures).
const tokenizerVersion = Number(a.tokenizer ?? (v2 ? 2 : 1));
if (tokenizerVersion !== 1 && tokenizerVersion !== 2) throw new Error('--tokenizer: 1 or 2');
const tasks = a.tasks!.split(',') as Task[];
if (tasks.some((t) => !TASKS.includes(t))) throw new Error(`--tasks: choose from ${TASKS.join(',')}`);
if (a.phrasing !== 'mix' && !PHRASINGS.includes(a.phrasing as never))
  throw new Error(`--phrasing: mix or one of ${PHRASINGS.join(',')}`);
if (!['generator', 'varied', 'patterns', 'mix'].includes(a.scenes!))
  throw new Error('--scenes: generator, varied, patterns or mix');
if (a.geometry !== 'plain' && a.geometry !== 'varied') throw new Error('--geometry: plain or varied');
const variety: Variety = {
  ...(a.geometry === 'plain' ? PLAIN_VARIETY : TRAINING_VARIETY),
  phrasing: a.phrasing as Variety['phrasing'],
  unanswerable: Number(a.unanswerable),
  scenes: a.scenes as Variety['scenes'],
};
const count = Number(a.count);
const lengths = a.frames!.split(',').map(Number);
const side = Number(a.size);
const perShard = Number(a['per-shard']);
const tok = needleTokenizer(tokenizerVersion as 1 | 2);
const r = new Random(Number(a.seed));
mkdirSync(a.out, { recursive: true });

const meta: object[] = [];
for (let shard = 0; shard * perShard < count; shard++) {
  const tensors: Record<string, { dtype: 'U8' | 'I32'; shape: number[]; data: Uint8Array | Int32Array }> = {};
  for (let i = shard * perShard; i < Math.min(count, (shard + 1) * perShard); i++) {
    const seed = r.int(0, 2 ** 31);
    const length = r.pick(lengths);
    const task = r.pick(tasks);
    const options: SampleOptions = v2
      ? varietyOptions(r, variety, length, task, a.geometry === 'plain' ? 2 : r.pick([2, 5, 10, 25, 30]))
      : { frames: length, fps: 2, width: side, height: side, needleFrames: Number(a['needle-frames']), task };
    const s = makeSample(seed, `train-${i}`, options);
    const frames = needleFrames(s, side);
    tensors[`${i}.frames`] = { dtype: 'U8', shape: [s.frames, side, side, 3], data: frames };
    // v1: half the samples ask for the short answer, half for the option letter. v2: every video is asked
    // several times (variants _1, _2, …), alternately short and multiple-choice, each worded anew.
    const mcq = v2 || r.next() < 0.5;
    const asks = v2 ? Number(a.variants) : 1;
    for (let j = 0; j < asks; j++) {
      const q = j ? makeSample(seed, s.id, { ...options, phrasingSeed: seed + 7919 * j }) : s;
      const letter = v2 ? j % 2 === 1 : mcq;
      const { prompt: ids, answer } = needleAsking(tok, q, letter, tokenizerVersion as 1 | 2);
      const suffix = j ? `_${j}` : '';
      tensors[`${i}.input_ids${suffix}`] = { dtype: 'I32', shape: [ids.length], data: Int32Array.from(ids) };
      tensors[`${i}.answer_ids${suffix}`] = {
        dtype: 'I32',
        shape: [answer.length],
        data: Int32Array.from(answer),
      };
    }
    // The sample's own seed: makeSample(seed, id, options) renders it again (test/needle/parity.test.ts).
    meta.push({
      i,
      shard,
      seed,
      ...(v2 && { options, question: s.question, background: s.scene.background }),
      task: s.task,
      frames: s.frames,
      // The form of each asking: variant j is multiple-choice when j is odd (v2), the one asking as drawn (v1).
      forms: Array.from({ length: asks }, (_, j) => ((v2 ? j % 2 === 1 : mcq) ? 'mcq' : 'short')),
      mcq,
      answer: s.answer,
      letter: s.answerLetter,
    });
  }
  await saveSafetensors(join(a.out, `shard-${String(shard).padStart(5, '0')}.safetensors`), tensors);
  process.stderr.write(`\rexported ${Math.min(count, (shard + 1) * perShard)}/${count}`);
}
writeFileSync(join(a.out, 'index.json'), JSON.stringify({ count, side, data: a.data, samples: meta }));
process.stderr.write('\n');
