/**
 * A WordPiece tokenizer for the tiny TimeViper fixtures: Nemotron-Nano's specials, a few words, and `<image>` at
 * the id the caller gives (the fixtures' config says 310).
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { wordPieceTokenizerJson } from '../../src/needle/tokenizer.js';

export const TIMEVIPER_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'timeviper');

const SPECIALS: Record<string, number> = {
  '<SPECIAL_10>': 300,
  '<SPECIAL_11>': 301,
  '<SPECIAL_12>': 302,
  '</s>': 303,
  '<image>': 310,
};
const WORDS = ['[UNK]', 'System', 'User', 'Assistant', 'what', 'is', 'it', '?', 'Best', 'Option', ':', '('];

export function writeTimeViperTokenizer(dir: string, imageId = 310): void {
  const vocab: Record<string, number> = Object.fromEntries(WORDS.map((w, i) => [w, i]));
  Object.assign(vocab, SPECIALS, { '<image>': imageId });
  writeFileSync(
    join(dir, 'tokenizer.json'),
    JSON.stringify(wordPieceTokenizerJson(vocab, Object.keys(SPECIALS))),
  );
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', eos_token: '</s>', unk_token: '[UNK]' }),
  );
}

/**
 * A loadable tiny TimeViper checkpoint directory with random weights: the `transv` fixture (9 Nemotron-H blocks
 * of width 32, a 4-block SigLIP on 30×30 frames, 16 tokens per frame, stages uni_2_0.34375 and attn_6_0.25 with
 * TransV) or its `drop` twin without transfer, with the tokenizer above.
 */
export function writeTinyTimeViper(dir: string, fixture: 'transv' | 'drop' = 'transv', imageId = 310): void {
  for (const f of ['config.json', 'model.safetensors'])
    copyFileSync(join(TIMEVIPER_FIXTURES, fixture, f), join(dir, f));
  writeTimeViperTokenizer(dir, imageId);
}
