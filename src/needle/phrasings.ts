/**
 * How a sample's question is worded. 'generator': the one sentence per task the shipped models were trained
 * on. 'varied': the training phrasings below (several sentences per task, then random decorations: spelling,
 * case, a place such as "in the video", a lead-in, a dropped question mark, an unknown word). 'reworded': the
 * held-out sentences of heldout-phrasings.ts, for evaluation only; none of them is reused here.
 */
import type { Random } from '../util/random.js';
import { HELDOUT_PHRASINGS } from './heldout-phrasings.js';
import type { Task } from './tasks.js';

export type Phrasing = 'generator' | 'varied' | 'reworded';
export const PHRASINGS: readonly Phrasing[] = ['generator', 'varied', 'reworded'];

/** What a template's {slots} stand for: a shape, an item and its plural, the two items of an order question. */
export interface Slots {
  shape?: string;
  item?: string;
  items?: string;
  a?: string;
  b?: string;
}

const TRAINING: Readonly<Record<Task, readonly string[]>> = {
  color: [
    'What colour was the {shape}?',
    'What is the colour of the {shape}?',
    'Which colour is the {shape}?',
    'The {shape} was which colour?',
    'In what colour was the {shape} drawn?',
    'Name the colour of the {shape}.',
    'What colour does the {shape} have?',
    'Give the colour of the {shape}.',
    "What was the {shape}'s colour?",
    'Identify the colour of the {shape}.',
    'What colour is the {shape} that appears?',
    '{shape} colour?',
  ],
  word: [
    'Which word appeared?',
    'What word was shown?',
    'What does the card say?',
    'Which word was written on the card?',
    'What was written?',
    'Name the word that was displayed.',
    'Give the word you saw.',
    'What word can be read?',
    'Which word flashed up?',
    'What text was on screen?',
    'What did the text say?',
  ],
  digit: [
    'Which number appeared?',
    'What number was shown?',
    'Which digit was displayed?',
    'Name the number that was on the card.',
    'What numeral appeared?',
    'Give the digit you saw.',
    'What digit could be seen?',
    'Which number flashed up?',
    'What number is written on the card?',
    'Which numeral can be seen?',
  ],
  count: [
    'How many times did a {item} appear?',
    'How many times was a {item} shown?',
    'How many {items} were there?',
    'Count the {items}.',
    'How often did a {item} appear?',
    'How many times can you see a {item}?',
    'How many {items} appeared?',
    'Give the number of times a {item} was displayed.',
    'How many {items} were shown?',
    'How many times is a {item} visible?',
  ],
  order: [
    'Which appeared first, the {a} or the {b}?',
    'Which was shown first, the {a} or the {b}?',
    'Was the {a} or the {b} shown first?',
    'Of the {a} and the {b}, which appeared earlier?',
    'Which came earlier, the {a} or the {b}?',
    'The {a} or the {b}: which appeared first?',
    'Which one was first, the {a} or the {b}?',
    'Which appeared before the other, the {a} or the {b}?',
  ],
};

/** Where the question says it looks; inserted before the final punctuation. */
const PLACES = [
  ' in the video',
  ' in this video',
  ' in the clip',
  ' in the footage',
  ' on screen',
  ' during the video',
  ' in the recording',
  ' in this movie',
];
const LEAD_INS = [
  'Question:',
  'Hey,',
  'Quick question:',
  'Please tell me:',
  'Looking at the video,',
  'Based on the video,',
];

const fill = (template: string, s: Slots): string =>
  template.replace(/\{(\w+)\}/g, (_, k: keyof Slots) => {
    const v = s[k];
    if (v === undefined) throw new Error(`no value for {${k}}`);
    return v;
  });

/** A made-up word the tokenizer does not know, so training sees [UNK] in questions. */
const nonsense = (r: Random): string =>
  Array.from({ length: r.int(4, 9) }, () => String.fromCharCode(97 + r.int(0, 25))).join('') + 'q';

function decorate(r: Random, q: string): string {
  if (r.next() < 0.5) q = q.replace(/colour/g, 'color');
  if (r.next() < 0.4) {
    const place = r.pick(PLACES);
    q = /[?.]$/.test(q) ? q.slice(0, -1) + place + q.slice(-1) : q + place;
  }
  if (r.next() < 0.15) q = `${r.pick(LEAD_INS)} ${q[0].toLowerCase()}${q.slice(1)}`;
  if (r.next() < 0.1) {
    const words = q.split(' ');
    words.splice(r.int(0, words.length), 0, nonsense(r));
    q = words.join(' ');
  }
  if (r.next() < 0.2) q = q.replace(/[?.]$/, '');
  const c = r.next();
  return c < 0.3 ? q.toLowerCase() : c < 0.38 ? q.toUpperCase() : q;
}

/** The question of a task in the given phrasing; `generator` is the sentence the caller already wrote. */
export function phrase(r: Random, phrasing: Phrasing, task: Task, slots: Slots, generator: string): string {
  if (phrasing === 'generator') return generator;
  if (phrasing === 'reworded') return fill(r.pick(HELDOUT_PHRASINGS[task]), slots);
  return decorate(r, fill(r.pick(TRAINING[task]), slots));
}

/** Every sentence and fragment the training phrasings can emit (slots left out), for the tokenizer. */
export const trainingCorpus = (): string[] =>
  [...Object.values(TRAINING).flat(), ...PLACES, ...LEAD_INS].map((t) => t.replace(/\{\w+\}/g, ' '));
