/**
 * Qwen2-VL end to end on raw RGB frames: processor → prompt with expanded pads → logits → streamed answer.
 *
 *   npx tsx examples/qwen2vl.ts                      # the tiny test checkpoint (no tokenizer: prints ids)
 *   npx tsx examples/qwen2vl.ts ~/models/Qwen2-VL-2B-Instruct "What is in the video?"
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { generate, optionsFromGenerationConfig } from '../src/generate/index.js';
import { Tokenizer } from '../src/io/index.js';
import { Qwen2VL, Qwen2VLProcessor, type RgbImage, tokenCount } from '../src/models/qwen2vl/index.js';

const dir = process.argv[2] ?? join(import.meta.dirname, '..', 'test', 'fixtures', 'qwen2vl', 'tiny-a');
const question = process.argv[3] ?? 'What happens in this video?';

// Four synthetic 96x64 frames (a bright square moving right); decoded video frames have the same shape.
const frames: RgbImage[] = Array.from({ length: 4 }, (_, t) => {
  const width = 96;
  const height = 64;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const inside = x >= 10 + 15 * t && x < 30 + 15 * t && y >= 20 && y < 40;
      data.set(inside ? [250, 240, 30] : [20, 40, 90 + y], (y * width + x) * 3);
    }
  return { width, height, data };
});

const model = await Qwen2VL.load(dir); // CPU, f32
const hasOwnProcessor = await access(join(dir, 'preprocessor_config.json')).then(
  () => true,
  () => false,
);
const processor = hasOwnProcessor
  ? await Qwen2VLProcessor.load(dir)
  : await Qwen2VLProcessor.load(join(dir, '..', 'processor'));
const video = processor.processVideos([frames]);
console.log('video grid [t, h, w]:', video.grids[0], '→', tokenCount(video.grids[0]), 'tokens');

let inputIds: number[];
let tokenizer: Tokenizer | null = null;
if (
  await access(join(dir, 'tokenizer.json')).then(
    () => true,
    () => false,
  )
) {
  tokenizer = await Tokenizer.fromDir(dir);
  const text = tokenizer.applyChatTemplate(
    [{ role: 'user', content: [{ type: 'video' }, { type: 'text', text: question }] }],
    { addGenerationPrompt: true },
  );
  inputIds = tokenizer.encode(processor.expandPads(text, { video: video.grids }), {
    addSpecialTokens: false,
  });
} else {
  // The tiny checkpoint has no tokenizer: a few arbitrary text ids around the video span.
  const c = model.config;
  const pads = new Array(tokenCount(video.grids[0])).fill(c.video_token_id);
  inputIds = [11, 12, 13, c.vision_start_token_id, ...pads, c.vision_end_token_id, 14, 15];
}
const inputs = { inputIds, pixelValuesVideos: video.pixelValues, videoGridThw: video.grids };

const logits = model.forward(inputs); // [n, vocab]
console.log('logits', logits.shape);
logits.dispose();

const session = model.session();
const opts = optionsFromGenerationConfig(model.generationConfig!, {
  maxNewTokens: 16,
  promptIds: inputIds,
  decoder: tokenizer?.streamDecoder({ skipSpecialTokens: true }) ?? null,
});
for await (const piece of generate(session, inputs, opts))
  process.stdout.write(tokenizer ? piece.text : `${piece.token} `);
process.stdout.write('\n');
session[Symbol.dispose]();
model[Symbol.dispose]();
