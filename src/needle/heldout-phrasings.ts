/**
 * The reworded evaluation set's questions: how a person might type each task, written before (and apart
 * from) the training templates in phrasings.ts, which must never copy a sentence from here. Only the
 * evaluation reads this file. Slots: {shape} (e.g. "star"), {item} (e.g. "red circle", "word apple",
 * "number 7"), {a} and {b} (two such items).
 */
import type { Task } from './tasks.js';

export const HELDOUT_PHRASINGS: Readonly<Record<Task, readonly string[]>> = {
  color: [
    'what color is the {shape} in the video?',
    'The {shape} — what colour was it?',
    'which colour did the {shape} have',
    'tell me the color of the {shape}',
    'What color was the {shape} shown in this clip?',
    'can you tell what colour the {shape} was?',
    'Colour of the {shape}?',
    'WHAT COLOR WAS THE {shape}?',
  ],
  word: [
    'what word is written in the video?',
    'Which word did you see?',
    'what was the word on the card',
    'Tell me the word that was shown.',
    'Read the word that appears in this clip.',
    'which word shows up in the video',
    'What text appeared?',
    'WHICH WORD WAS DISPLAYED?',
  ],
  digit: [
    'what number is shown in the video?',
    'Which digit did you see?',
    'what digit appears in this clip',
    'Tell me the number on the card.',
    'Which number was displayed?',
    'what number shows up',
    'What was the digit?',
    'WHICH NUMBER APPEARED IN THE VIDEO?',
  ],
  count: [
    'how many times does the {item} appear in the video?',
    'How often was the {item} shown?',
    'count the times the {item} appears',
    'How many times did you see the {item}?',
    'how many times is there a {item} in this clip?',
    'Number of times the {item} was shown?',
    'HOW MANY TIMES DOES A {item} APPEAR?',
    'how many times did the {item} show up',
  ],
  order: [
    'which came first: the {a} or the {b}?',
    'Did the {a} or the {b} appear first?',
    'what was shown first, the {a} or the {b}',
    'Which one appeared earlier in the video, the {a} or the {b}?',
    'which did you see first — the {a} or the {b}?',
    'First to appear: the {a} or the {b}?',
    'WHICH CAME FIRST, THE {a} OR THE {b}?',
    'what showed up first in this clip, the {a} or the {b}?',
  ],
};
