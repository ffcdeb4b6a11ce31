/**
 * One needle sample as training data: its frames rendered at the training size and its askings tokenized in
 * the official Vamba prompt shape (research/vamba.md §4.4). Shared by the exporter of the PyTorch trainer's
 * shards (tools/needle/export_training_data.ts) and by `longshot train`'s streamed needle data, so both train
 * on exactly what inference sees.
 */
import { Tokenizer } from '../io/tokenizer.js';
import { renderFrame } from './render.js';
import { resizeRgb } from './resample.js';
import { mcqPrompt, type NeedleSample } from './tasks.js';
import {
  needleTokenizerConfig,
  needleTokenizerJson,
  SYSTEM_PROMPT,
  type TokenizerVersion,
} from './tokenizer.js';

/** The needle tokenizer of a version (1: the shipped v1 models; 2: lower-cased input, letter answers apart). */
export const needleTokenizer = (version: TokenizerVersion): Tokenizer =>
  new Tokenizer(needleTokenizerJson(version) as never, needleTokenizerConfig() as never);

/** The official Vamba prompt shape with our system prompt. */
export const needlePrompt = (question: string): string =>
  `<|im_start|>system\n${SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n<|vision_start|><|vision_end|>${question}<|im_end|>\n<|im_start|>assistant\n`;

/** Prompt ids and answer ids (ending with <|im_end|>) of one asking: the short answer, or the option letter. */
export function needleAsking(
  tok: Tokenizer,
  s: NeedleSample,
  letter: boolean,
  version: TokenizerVersion,
): { prompt: number[]; answer: number[] } {
  const imEnd = tok.tokenToId('<|im_end|>')!;
  const prompt = tok.encode(needlePrompt(letter ? mcqPrompt(s) : s.question));
  // Version 2 lower-cases its input, so the letter answers are the output-only upper-case tokens.
  const answer =
    letter && version === 2
      ? [tok.tokenToId(s.answerLetter)!, imEnd]
      : tok.encode(`${letter ? s.answerLetter : s.answer}<|im_end|>`);
  return { prompt, answer };
}

/** Every frame of a sample rendered and resized to side×side: uint8 [T, side, side, 3]. */
export function needleFrames(s: NeedleSample, side: number): Uint8Array {
  const out = new Uint8Array(s.frames * side * side * 3);
  for (let t = 0; t < s.frames; t++)
    out.set(resizeRgb(renderFrame(s, t).data, s.width, s.height, side, side), t * side * side * 3);
  return out;
}
