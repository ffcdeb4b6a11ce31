/**
 * The library facade end to end: load a model, encode a video once, ask about it several times.
 *
 *   npx tsx examples/video-lm.ts                                   # the embedded needle model, an example video
 *   npx tsx examples/video-lm.ts talk.mp4 "What is the speaker holding?" TIGER-Lab/Vamba-Qwen2-VL-7B
 */
import { VideoLM } from '../src/index.js';

const [path = 'examples/needle/needle-00001.mp4', question = 'What colour was the star?', id] =
  process.argv.slice(2);

using model = await VideoLM.load(id); // no id: the embedded model; device 'auto' (CUDA when available)
console.log(`${model.info.architecture} ${model.info.id} on ${model.info.device}`);

const video = await model.encodeVideo(path); // the model family's frame sampling unless told otherwise
console.log(`${video.timestampsSec.length} frames → ${video.tokens} video tokens`);

for await (const piece of model.ask(video, question)) process.stdout.write(piece); // streamed
process.stdout.write('\n');

const turns = [
  { role: 'user' as const, content: question },
  { role: 'assistant' as const, content: await model.ask(video, question).text() },
  { role: 'user' as const, content: 'Answer again in one word.' },
];
const { text, usage } = await model.chat(turns, { video, maxNewTokens: 8 }).result();
console.log(text.trim(), usage);
video.dispose();
