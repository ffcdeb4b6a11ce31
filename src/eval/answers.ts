/**
 * Answer parsing for multiple-choice and short-answer evaluation, following the reference harnesses
 * (research/benchmarks.md §1.0 and research/vamba.md §5.3) so our scores compare with published ones.
 */

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * lmms-eval's shared extractor (since April 2026): candidate letters in several forms, ranked
 * start 10 > end 9 > phrase 7 > parentheses 6 > period 5 > colon 4 > right-paren 3 > space 2; within a
 * form the later position wins; "" when nothing matches.
 */
export function extractChoice(response: string, letters = 'ABCD'): string {
  const text = response.trim().replace(/^[\s\p{P}]+|[\s\p{P}]+$/gu, '');
  const L = `[${escapeRegExp(letters)}]`;
  const forms: Array<[number, RegExp]> = [
    [10, new RegExp(`^(${L})(?=$|[\\s.:)\\],])`, 'g')],
    [9, new RegExp(`(?:^|[\\s(])(${L})$`, 'g')],
    [
      7,
      new RegExp(
        `(?:answer is|answer:|correct option is|option is|答案是|答案：|정답은)\\s*\\(?(${L})\\b`,
        'gi',
      ),
    ],
    [6, new RegExp(`\\((${L})\\)`, 'g')],
    [5, new RegExp(`\\b(${L})\\.`, 'g')],
    [4, new RegExp(`\\b(${L}):`, 'g')],
    [3, new RegExp(`\\b(${L})\\)`, 'g')],
    [2, new RegExp(`\\b(${L})\\s`, 'g')],
  ];
  let best = { rank: -1, pos: -1, letter: '' };
  for (const [rank, re] of forms)
    for (const m of text.matchAll(re)) {
      const letter = m[1].toUpperCase();
      if (!letters.includes(letter)) continue;
      const pos = m.index ?? 0;
      if (rank > best.rank || (rank === best.rank && pos > best.pos)) best = { rank, pos, letter };
    }
  return best.letter;
}

/**
 * Vamba's own rule (every eval/eval_*.py): lower-case; keep what follows "the answer is", else "answer:",
 * else "the option is "; then the first alphabetic character, upper-cased.
 */
export function vambaChoice(response: string): string {
  let s = response.toLowerCase();
  for (const marker of ['the answer is', 'answer:', 'the option is ']) {
    const i = s.indexOf(marker);
    if (i >= 0) {
      s = s.slice(i + marker.length);
      break;
    }
  }
  const m = s.match(/[a-z]/);
  return m ? m[0].toUpperCase() : '';
}

/** Lower-case, punctuation removed, articles dropped, spaces collapsed: the usual short-answer normalisation. */
function normalizeAnswer(s: string): string {
  return s
    .toLowerCase()
    .replace(/[\p{P}\p{S}]+/gu, ' ')
    .split(/\s+/)
    .filter((w) => w && !['a', 'an', 'the'].includes(w))
    .join(' ');
}

export const exactMatch = (prediction: string, answer: string): boolean =>
  normalizeAnswer(prediction) === normalizeAnswer(answer);

/** The answer prefixes lmms-eval strips before its (pre-April 2026) first-letter rule. */
const ANSWER_PREFIXES = [
  'The best answer is',
  'The correct answer is',
  'The answer is',
  'The answer',
  'The best option is',
  'The correct option is',
  'Best answer:',
  'Best option:',
];

/**
 * lmms-eval's per-task rule before the shared extractor (LVBench, Video-MME; LongVideoBench today): strip the
 * answer prefixes; an output of more than 10 words with no letter is unparsed (""); else the first letter.
 */
export function firstLetter(response: string, letters = 'ABCD'): string {
  let s = response.trim();
  for (const p of ANSWER_PREFIXES) s = s.replace(p, '');
  const re = new RegExp(`[${escapeRegExp(letters)}]`);
  const m = s.match(re);
  if (s.split(/\s+/).length > 10 && !m) return '';
  return m ? m[0] : '';
}

/** MVBench (lmms-eval): a leading "X." wins, else the first standalone letter; "" when there is none. */
export function mvbenchChoice(response: string, letters = 'ABCDE'): string {
  const s = response.trim();
  const L = `[${escapeRegExp(letters)}]`;
  const lead = s.match(new RegExp(`^\\(?(${L})[.)]`));
  if (lead) return lead[1];
  return s.match(new RegExp(`\\b(${L})\\b`))?.[1] ?? '';
}

/**
 * MMMU's `parse_multi_choice_response` (lmms-eval NExT-QA MC): "(X)", else "X ", else "X."; outputs of more
 * than 5 words may instead name an option's text; of several candidates the last one written wins; ""
 * when nothing matches (the caller draws its random letter).
 */
export function mmmuChoice(response: string, options: readonly string[]): string {
  const letters = options.map((_, i) => String.fromCharCode(65 + i));
  const r = ` ${response.replace(/^[,.!?;:'\s]+|[,.!?;:'\s]+$/g, '')} `;
  for (const form of [(l: string) => `(${l})`, (l: string) => `${l} `, (l: string) => `${l}.`]) {
    const found = letters.filter((l) => r.includes(form(l)));
    if (found.length)
      return found.reduce((a, b) => (r.lastIndexOf(form(b)) > r.lastIndexOf(form(a)) ? b : a));
  }
  if (r.trim().split(/\s+/).length <= 5) return '';
  const low = r.toLowerCase();
  const named = letters.filter((_, i) => low.includes(options[i].toLowerCase()));
  if (!named.length) return '';
  const at = (l: string) => low.lastIndexOf(options[letters.indexOf(l)].toLowerCase());
  return named.reduce((a, b) => (at(b) > at(a) ? b : a));
}

/**
 * VNBench's `evaluation/eval.py`: the text before the first "."; then the first of A, B, C, D that occurs in
 * it, checked in that order (so "Answer: B" reads as A, as in the official scores).
 */
export function vnbenchChoice(response: string): string {
  const head = response.split('.')[0];
  return ['A', 'B', 'C', 'D'].find((l) => head.includes(l)) ?? '';
}

const clock = (h: string | undefined, m: string, s: string) =>
  Number(h ?? 0) * 3600 + Number(m) * 60 + Number(s);

/**
 * lmms-eval Charades-STA `extract_time`: lower-case, "to" → "-", keep the sentences (split on !?\n) that
 * mention start/end/happen (all of them if none do), then the first of: an mm:ss range, an "a - b" range,
 * two clock times, the first number of two sentences, an "a s - b s" range. The first pair, ordered; null
 * when none parses.
 */
export function extractTimeSpan(response: string): [number, number] | null {
  const text = response.toLowerCase().replaceAll('to', '-');
  const sentences = text.split(/[!?\n]/);
  const keywords = ['starts', 'ends', 'happens in', 'start time', 'end time', 'start', 'end', 'happen'];
  const kept = sentences.filter((s) => keywords.some((k) => s.includes(k)));
  const candidates = kept.length ? kept : sentences;
  const pair = (): [number, number] | null => {
    const hms = '(?:(\\d+):)?(\\d+):(\\d+(?:\\.\\d+)?)';
    const range = text.match(new RegExp(`${hms}\\s*-\\s*${hms}`));
    if (range) return [clock(range[1], range[2], range[3]), clock(range[4], range[5], range[6])];
    const num = text.match(/(\d+\.*\d*)\s*-\s*(\d+\.*\d*)/);
    if (num) return [Number(num[1]), Number(num[2])];
    const clocks = candidates.flatMap((s) => [...s.matchAll(new RegExp(hms, 'g'))]);
    if (clocks.length >= 2)
      return [
        clock(clocks[0][1], clocks[0][2], clocks[0][3]),
        clock(clocks[1][1], clocks[1][2], clocks[1][3]),
      ];
    const firsts = candidates.flatMap((s) => s.match(/\b(\d+\.\d+|\d+)\b/)?.[1] ?? []);
    if (firsts.length >= 2) return [Number(firsts[0]), Number(firsts[1])];
    const secs = text.match(/(\d+\.*\d*)\s*s\s*-\s*(\d+\.*\d*)\s*s/);
    return secs ? [Number(secs[1]), Number(secs[2])] : null;
  };
  const p = pair();
  if (!p?.every(Number.isFinite)) return null;
  return p[0] <= p[1] ? p : [p[1], p[0]];
}
