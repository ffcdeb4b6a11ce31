/**
 * Which parameters train: a recipe lists patterns over the checkpoint's Hugging Face names (`train`: only
 * these; `freeze`: all but these). A pattern is a glob (`*` any run of characters but '.', `**` any run,
 * `?` one character) or, written `/…/`, a regular expression searched in the name.
 */
import { InputError } from '../errors.js';

export type NameMatcher = (name: string) => boolean;

/** One pattern as a predicate; a bad regular expression is an InputError naming it. */
export function compilePattern(pattern: string, where = 'pattern'): NameMatcher {
  const re = pattern.length > 2 && pattern.startsWith('/') && pattern.endsWith('/');
  if (re) {
    let r: RegExp;
    try {
      r = new RegExp(pattern.slice(1, -1));
    } catch (e) {
      throw new InputError(
        `${where}: ${pattern} is not a valid regular expression (${(e as Error).message})`,
      );
    }
    return (name) => r.test(name);
  }
  let src = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      src += '.*';
      i++;
    } else if (c === '*') src += '[^.]*';
    else if (c === '?') src += '.';
    else src += c.replace(/[\\^$+.()|[\]{}]/g, '\\$&');
  }
  const r = new RegExp(`^${src}$`);
  return (name) => r.test(name);
}

export interface FreezeRule {
  /** Patterns of the parameters that train (all when absent). */
  train?: readonly string[];
  /** Patterns of parameters that stay fixed (applied after `train`). */
  freeze?: readonly string[];
}

/**
 * The names that train. Every pattern must match at least one name (a typo would otherwise freeze or train
 * the wrong thing silently), and something must train.
 */
export function trainableNames(names: readonly string[], rule: FreezeRule, where = 'recipe'): string[] {
  const check = (list: readonly string[] | undefined, key: string) =>
    (list ?? []).map((p) => {
      const m = compilePattern(p, `${where}: ${key}`);
      if (!names.some(m))
        throw new InputError(
          `${where}: ${key} pattern "${p}" matches no parameter of this model (names look like "${names[0]}"; docs/training.md lists each family's)`,
        );
      return m;
    });
  const train = rule.train ? check(rule.train, 'train') : null;
  const freeze = check(rule.freeze, 'freeze');
  const out = names.filter((n) => (!train || train.some((m) => m(n))) && !freeze.some((m) => m(n)));
  if (!out.length) throw new InputError(`${where}: the train/freeze patterns leave no parameter to train`);
  return out;
}
