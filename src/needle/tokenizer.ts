import { COLOR_NAMES, DIGITS, describe, type Item, SHAPES, WORDS } from './items.js';
import { trainingCorpus } from './phrasings.js';
import { NOT_SHOWN } from './tasks.js';

/**
 * The tiny model's tokenizer: a Hugging Face `tokenizer.json` whose WordPiece vocabulary holds whole words
 * (no word is ever split; any other word is `[UNK]`), plus Qwen's chat and vision special tokens. WordPiece
 * rather than WordLevel because both the JS and the Python tokenizers libraries read it.
 *
 * Version 1 (the shipped models) is case-sensitive and holds exactly the words the generator emits. Version 2
 * lower-cases its input and holds what people type about these tasks as well: both spellings, synonyms,
 * question forms, places ("in the video"), the training phrasings' words; upper-case A–D stay as output-only
 * tokens so that answers remain option letters.
 */
export type TokenizerVersion = 1 | 2;
export const SPECIAL_TOKENS = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|image_pad|>',
  '<|video_pad|>',
] as const;

export const SYSTEM_PROMPT = 'You are a helpful assistant.';

/** Every text the task emits: prompts, questions for every item, options and answers. */
function corpus(): string[] {
  const items: Item[] = [
    ...SHAPES.flatMap((shape) => COLOR_NAMES.map((color) => ({ kind: 'shape' as const, shape, color }))),
    ...DIGITS.map((text) => ({ kind: 'digit' as const, text })),
    ...WORDS.map((text) => ({ kind: 'word' as const, text })),
  ];
  return [
    SYSTEM_PROMPT,
    'system user assistant',
    "Answer with the option's letter from the given choices directly.",
    'Select the best answer to the following multiple-choice question based on the video.',
    'Respond with only the letter (A, B, C, or D) of the correct option.',
    'What colour was the Which word appeared? Which number appeared? How many times did a appear?',
    'Which appeared first, the or the Describe the video. Caption this video. 0 1 2 3 4 5',
    ...items.map(describe),
    ...SHAPES,
    ...COLOR_NAMES,
  ];
}

/** BERT-style pre-tokenisation: whitespace splits, each ASCII punctuation mark is its own word. */
const preTokenize = (text: string): string[] =>
  text.split(/\s+/).flatMap((w) => w.match(/[A-Za-z0-9]+|[^A-Za-z0-9\s]/g) ?? []);

/**
 * Words people use when asking about a short video: question forms, verbs of showing and seeing, nouns for the
 * video and what is in it, synonyms of the task's words, British and American spellings, small numbers.
 */
const EVERYDAY = `
  what which who whom whose when where why how many much often times time once twice
  is are was were be been being do does did done has have had can could would will shall should may might must
  the a an this that these those there here it its it's any some every each all no none not nothing never
  of in on at to from into onto during after before between by for with without about over under through
  and or but if then than so also just only first last earlier later before after next one ones other another
  i me my you your we us our they them their he she his her please tell say said give name identify read
  see saw seen look looked looking watch watched watching notice noticed spot spotted find found
  appear appears appeared appearing show shows showed shown showing display displays displayed
  present presented visible come comes came pop pops popped flash flashes flashed occur occurs occurred
  write writes wrote written print printed spell spelled spelt contain contains contained include included
  video videos clip clips footage film movie recording screen frame frames picture pictures image images
  scene card cards sign box boxes label labels object objects item items thing things symbol symbols
  colour colours color colors coloured colored hue shade tint
  shape shapes circle circles square squares triangle triangles star stars
  word words text letters number numbers digit digits numeral numerals figure count counted counting total
  red green blue yellow purple orange grey gray white black pink brown violet
  zero one two three four five six seven eight nine ten
  answer question option options choice choices letter correct best
  shown not none nowhere nope yes
  exactly roughly about approximately
  was seen did appear up down out
  hey hi hello ok okay question quick quickly based looking
`;

/** Every word of version 2: the generator's, the training phrasings', the everyday list. */
function corpusV2(): string[] {
  return [...corpus(), ...trainingCorpus(), EVERYDAY, NOT_SHOWN, '— – … ’ “ ”'];
}

export function needleVocabulary(version: TokenizerVersion = 1): string[] {
  const words = new Set<string>();
  const lines = version === 1 ? corpus() : corpusV2().map((l) => l.toLowerCase());
  for (const line of lines) for (const w of preTokenize(line)) words.add(w);
  for (const l of 'ABCD') words.add(l);
  return ['[UNK]', ...[...words].sort()];
}

/** The tokenizer.json object. */
export function needleTokenizerJson(version: TokenizerVersion = 1): object {
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((t, i) => {
    vocab[t] = i;
  });
  for (const w of needleVocabulary(version)) vocab[w] = Object.keys(vocab).length;
  return wordPieceTokenizerJson(vocab, SPECIAL_TOKENS, version === 2 ? { type: 'Lowercase' } : null);
}

/**
 * A WordPiece tokenizer.json over whole words (`[UNK]` for the rest), `special` its added special tokens,
 * `normalizer` what the input goes through first (special tokens are matched before it).
 */
export function wordPieceTokenizerJson(
  vocab: Record<string, number>,
  special: readonly string[],
  normalizer: object | null = null,
): object {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((content) => ({
      id: vocab[content],
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer,
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  };
}

/**
 * tokenizer_config.json: Qwen's special-token roles and Qwen2-VL's chat template, which writes one pad per
 * video or image for the processor to expand (Vamba ignores the template and builds its prompt itself).
 */
export function needleTokenizerConfig(): object {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    model_max_length: 32768,
    bos_token: null,
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    unk_token: '[UNK]',
    added_tokens_decoder: Object.fromEntries(
      SPECIAL_TOKENS.map((content, id) => [
        String(id),
        { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
      ]),
    ),
    chat_template:
      "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}{% if part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>{% elif part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
  };
}
