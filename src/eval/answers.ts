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
