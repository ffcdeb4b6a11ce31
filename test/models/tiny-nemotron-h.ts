/**
 * A tiny Nemotron-H checkpoint directory for the facade, CLI and server tests: the `nano-like` parity fixture
 * (config.json, model.safetensors, generation_config.json with stop ids 302 and 303) plus a small WordPiece
 * tokenizer with Nano-9B-v2's special tokens and a chat template written after the model card's "Prompt
 * Format": `<SPECIAL_10>System`, `<SPECIAL_11>User` / `Assistant` turns ending `<SPECIAL_12>`, and the
 * `/think` / `/no_think` switches (the last one in a system or user message wins; default on) that open the
 * answer with `<think>\n` or `<think></think>`.
 */

import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { wordPieceTokenizerJson } from '../../src/needle/tokenizer.js';

const FIXTURE = 'test/fixtures/nemotron_h/nano-like';

export const WORDS = [
  '[UNK]',
  'System',
  'User',
  'Assistant',
  'You',
  'are',
  'a',
  'helpful',
  'assistant',
  'be',
  'brief',
  'what',
  'is',
  'the',
  'colour',
  'of',
  'sky',
  'and',
  'sea',
  'grass',
  'blue',
  'green',
  'red',
  'it',
  'yes',
  'no',
  '?',
  '.',
  ',',
];

/** Special tokens at the ids the fixture's config and generation_config.json use (pad 300, bos 301, eos 302/303). */
export const NEMOTRON_SPECIALS: Record<string, number> = {
  '<pad>': 300,
  '<s>': 301,
  '<SPECIAL_12>': 302,
  '</s>': 303,
  '<SPECIAL_10>': 304,
  '<SPECIAL_11>': 305,
  '<think>': 306,
  '</think>': 307,
};

/** Nano-9B-v2's prompt format as the model card documents it (a reduced template: no tools). */
export const NEMOTRON_TEMPLATE = `{%- set ns = namespace(reasoning=true) -%}
{%- for m in messages if m['role'] in ['system', 'user'] -%}
{%- if '/no_think' in m['content'] -%}{%- set ns.reasoning = false -%}
{%- elif '/think' in m['content'] -%}{%- set ns.reasoning = true -%}{%- endif -%}
{%- endfor -%}
<SPECIAL_10>System
{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'].replace('/no_think', '').replace('/think', '').strip() }}{% endif %}
{% for m in messages %}{% if m['role'] == 'user' %}<SPECIAL_11>User
{{ m['content'].replace('/no_think', '').replace('/think', '').strip() }}
{% elif m['role'] == 'assistant' %}<SPECIAL_11>Assistant
{{ m['content'].split('</think>')[-1].strip() }}
<SPECIAL_12>
{% endif %}{% endfor %}{% if add_generation_prompt %}<SPECIAL_11>Assistant
{% if ns.reasoning %}<think>
{% else %}<think></think>{% endif %}{% endif %}`;

export function writeTinyNemotronH(dir: string): void {
  for (const f of ['config.json', 'model.safetensors', 'generation_config.json'])
    copyFileSync(join(FIXTURE, f), join(dir, f));
  const vocab: Record<string, number> = Object.fromEntries(WORDS.map((w, i) => [w, i]));
  Object.assign(vocab, NEMOTRON_SPECIALS);
  writeFileSync(
    join(dir, 'tokenizer.json'),
    JSON.stringify(wordPieceTokenizerJson(vocab, Object.keys(NEMOTRON_SPECIALS))),
  );
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: '<s>',
      eos_token: '<SPECIAL_12>',
      pad_token: '<pad>',
      unk_token: '[UNK]',
      added_tokens_decoder: Object.fromEntries(
        Object.entries(NEMOTRON_SPECIALS).map(([content, id]) => [
          String(id),
          { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
        ]),
      ),
      chat_template: NEMOTRON_TEMPLATE,
    }),
  );
}
