import { COLOR_NAMES, DIGITS, describe, type Item, SHAPES, WORDS } from './items.js';

/**
 * The tiny model's tokenizer: a Hugging Face `tokenizer.json` whose WordPiece vocabulary holds every whole
 * word the needle task can produce (so no word is ever split), plus Qwen's chat and vision special tokens.
 * WordPiece rather than WordLevel because both the JS and the Python tokenizers libraries read it.
 */
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

export function needleVocabulary(): string[] {
  const words = new Set<string>();
  for (const line of corpus()) for (const w of preTokenize(line)) words.add(w);
  for (const l of 'ABCD') words.add(l);
  return ['[UNK]', ...[...words].sort()];
}

/** The tokenizer.json object. */
export function needleTokenizerJson(): object {
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((t, i) => {
    vocab[t] = i;
  });
  for (const w of needleVocabulary()) vocab[w] = Object.keys(vocab).length;
  return wordPieceTokenizerJson(vocab, SPECIAL_TOKENS);
}

/** A WordPiece tokenizer.json over whole words (`[UNK]` for the rest), `special` its added special tokens. */
export function wordPieceTokenizerJson(vocab: Record<string, number>, special: readonly string[]): object {
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
    normalizer: null,
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
