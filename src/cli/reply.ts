/** How `ask`, `caption` and `chat` print an answer: streamed as it comes, whole, or as one `--json` object. */
import type { Answer } from '../facade/answer.js';
import type { ModelInfo } from '../facade/types.js';
import { printJson } from './options.js';

export async function printReply(
  reply: Answer,
  o: { stream?: boolean; json?: boolean },
  info: ModelInfo,
  /** What the JSON object says besides the answer (the question, the video…). */
  about: object,
  /** Fields after the answer's own (e.g. the video's decode report). */
  more: object = {},
): Promise<void> {
  if (o.stream && !o.json) {
    for await (const piece of reply) process.stdout.write(piece);
    process.stdout.write('\n');
  }
  const result = await reply.result();
  if (o.json)
    printJson({
      model: info.id,
      architecture: info.architecture,
      ...about,
      answer: result.text,
      finish_reason: result.finishReason,
      usage: result.usage,
      ...more,
    });
  else if (!o.stream) process.stdout.write(`${result.text}\n`);
}
