/**
 * Typed reading of Hugging Face JSON config files: each getter checks the value's type, applies the
 * default when the key is absent (or null, which HF writes for "unset"), and remembers the key so the
 * keys nobody read can be kept as extras. Errors name the file and the key.
 */
import { access, readFile } from 'node:fs/promises';
import { ModelError } from '../errors.js';

export type JsonObject = Record<string, unknown>;

export const isObject = (v: unknown): v is JsonObject =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

export class Fields {
  private readonly used = new Set<string>();

  /** `where` names the file (and the nested key, e.g. `config.json: text_config`) in error messages. */
  constructor(
    readonly obj: JsonObject,
    readonly where: string,
  ) {}

  static of(value: unknown, where: string): Fields {
    if (!isObject(value)) throw new ModelError(`${where}: expected a JSON object`);
    return new Fields(value, where);
  }

  error(key: string, why: string): ModelError {
    return new ModelError(`${this.where}: "${key}" ${why}`);
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  /** The raw value (marking the key as read), or undefined. */
  get(key: string): unknown {
    this.used.add(key);
    const v = this.obj[key];
    return v === null ? undefined : v;
  }

  num(key: string, fallback: number): number;
  num(key: string): number | undefined;
  num(key: string, fallback?: number): number | undefined {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw this.error(key, `must be a number (got ${JSON.stringify(v)})`);
    return v;
  }

  /** A non-negative integer (sizes, counts, token ids). */
  int(key: string, fallback: number): number;
  int(key: string): number | undefined;
  int(key: string, fallback?: number): number | undefined {
    const v = this.num(key);
    if (v === undefined) return fallback;
    if (!Number.isSafeInteger(v) || v < 0) throw this.error(key, `must be a non-negative integer (got ${v})`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean;
  bool(key: string): boolean | undefined;
  bool(key: string, fallback?: boolean): boolean | undefined {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw this.error(key, `must be true or false (got ${JSON.stringify(v)})`);
    return v;
  }

  str(key: string, fallback: string): string;
  str(key: string): string | undefined;
  str(key: string, fallback?: string): string | undefined {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'string') throw this.error(key, `must be a string (got ${JSON.stringify(v)})`);
    return v;
  }

  numList(key: string, length?: number): number[] | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x)))
      throw this.error(key, `must be a list of numbers (got ${JSON.stringify(v)})`);
    if (length !== undefined && v.length !== length)
      throw this.error(key, `must have ${length} entries (got ${v.length})`);
    return v as number[];
  }

  /** An int or a list of ints (e.g. eos_token_id), as a list. */
  intOrList(key: string): number[] | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => Number.isSafeInteger(x) && x >= 0))
      throw this.error(key, `must be a token id or a list of token ids (got ${JSON.stringify(v)})`);
    return list as number[];
  }

  /** A nested object as Fields (empty when absent). */
  nested(key: string): Fields {
    const v = this.get(key);
    if (v === undefined) return new Fields({}, `${this.where}: ${key}`);
    if (!isObject(v)) throw this.error(key, 'must be a JSON object');
    return new Fields(v, `${this.where}: ${key}`);
  }

  /** The keys never read, with their values. */
  unread(): JsonObject {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(this.obj)) if (!this.used.has(k)) out[k] = v;
    return out;
  }
}

/** Marks a bare Python float in the JSON text; the NUL (written as a JSON escape) keeps it from colliding. */
const PY_FLOAT = 'py-float:';

/**
 * JSON.parse that also accepts Python's `Infinity`, `-Infinity` and `NaN` tokens, which `json.dumps` writes
 * for non-finite floats (e.g. a Mamba `dt_limit` of (0, inf)) and which strict JSON rejects.
 */
export function parsePythonJson(text: string): unknown {
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)/g, (m, bare) =>
    bare ? `"\\u0000${PY_FLOAT}${bare}"` : m,
  );
  return JSON.parse(marked, (_k, v) =>
    typeof v === 'string' && v.startsWith(`\0${PY_FLOAT}`) ? Number(v.slice(PY_FLOAT.length + 1)) : v,
  );
}

/** Reads a JSON file, turning absence and syntax errors into ModelErrors that name the file. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelError(
      code === 'ENOENT' ? `${path}: file not found` : `${path}: cannot read (${code ?? e})`,
      {
        cause: e,
      },
    );
  }
  try {
    return parsePythonJson(text);
  } catch (e) {
    throw new ModelError(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

export const fileExists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );
