/**
 * TimeViper's prompts (timeviper/data/conversation.py `nano_base`, eval/vllm_inference/data): the NANO separator
 * style over Nemotron-Nano's special tokens —
 *   <SPECIAL_10>System\n<SPECIAL_12>\n  then per turn  <SPECIAL_11>User\n{message}\n<SPECIAL_12>
 *   (assistant turns alike), and the generation prompt <SPECIAL_11>Assistant\n
 * — with one `<image>` per frame at the start of the first user message (no separator), or in place of an
 * `<image>` the message already holds. Multiple-choice prompts end with the official instruction; the
 * official evaluation then appends the answer prompt "Best Option: (" after the generation prompt.
 */
import { UsageError } from '../../errors.js';
import type { ChatTurn } from '../../facade/types.js';

export const IMAGE_TOKEN = '<image>';
export const MCQ_INSTRUCTION =
  'Please provide your answer by stating the letter followed by the full option.';
export const ANSWER_PROMPT = 'Best Option: (';

/** The official multiple-choice user message: question, options one per line, the instruction. */
export const mcqMessage = (question: string, options: readonly string[]): string =>
  [question, options.join('\n'), MCQ_INSTRUCTION].join('\n');

/** The official temporal-grounding user message (template `user[-6]` of timeviper/data/data_utils.py). */
export const groundingMessage = (durationSec: number, frames: number, sentence: string): string =>
  `The video lasts for ${durationSec} seconds, and ${frames} frames are uniformly sampled from it. ` +
  `Localize the visual content described by the given textual query '${sentence}' in the video, and output ` +
  "the start and end timestamps in seconds. The output format of the predicted timestamp should be like: 'start to end' seconds";

/**
 * The nano_base prompt for `turns` with `frames` placeholders (0: no video), and the answer prompt to append
 * after it (tokenised on its own, as the official evaluation does) when the last user message is a
 * multiple-choice prompt. A system turn's text goes under the "System" header (none in the official prompts).
 */
export function nanoBasePrompt(
  turns: readonly ChatTurn[],
  frames: number,
): { text: string; answerPrompt: string | null } {
  const system = turns.find((t) => t.role === 'system')?.content;
  const chat = turns.filter((t) => t.role !== 'system');
  if (!chat.length || chat[chat.length - 1].role !== 'user')
    throw new UsageError('a TimeViper prompt must end with a user message');
  let out = `<SPECIAL_10>System\n${system ? `${system}\n` : ''}<SPECIAL_12>\n`;
  let placed = frames === 0;
  for (const t of chat) {
    let text = t.content;
    if (!placed && t.role === 'user') {
      const tokens = IMAGE_TOKEN.repeat(frames);
      text = text.includes(IMAGE_TOKEN) ? text.replace(IMAGE_TOKEN, tokens) : tokens + text;
      placed = true;
    }
    out += `<SPECIAL_11>${t.role === 'user' ? 'User' : 'Assistant'}\n${text}\n<SPECIAL_12>`;
  }
  out += '<SPECIAL_11>Assistant\n';
  return {
    text: out,
    answerPrompt: chat[chat.length - 1].content.endsWith(MCQ_INSTRUCTION) ? ANSWER_PROMPT : null,
  };
}
