/**
 * Training a checkpoint with another tokenizer (a recipe's `model.tokenizer` beside `model.from`): the token
 * rows of its embedding and output head move to the new tokenizer's ids, as train_needle.py --init does when
 * the shipped v1 needle models go on training with tokenizer v2. A word keeps the rows of the same old word,
 * else of its capitalised form ("what" ← "What", tokenizer v2 lower-cases its input); every other token starts
 * at the mean row. The result is written as a checkpoint directory the family loads like any other.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, ModelError } from '../errors.js';
import type { HostTensor } from '../io/convert.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { saveSafetensors } from '../io/safetensors-write.js';
import { bf16ToF32, f32ToBf16 } from '../runtime/dtype.js';

/** The tensors whose rows are tokens, by checkpoint layout (Vamba and Qwen2-VL share the Qwen2 names). */
export const TOKEN_ROWS = ['model.embed_tokens.weight', 'lm_head.weight'];

/**
 * `tokenizer.json`'s vocabulary: token → id, its added tokens included (a Qwen2 tokenizer keeps `<|im_end|>` and
 * the other specials only there).
 */
export function vocabularyOf(tokenizerJson: string, where: string): Record<string, number> {
  const t = JSON.parse(tokenizerJson) as { model?: { vocab?: unknown }; added_tokens?: unknown };
  const v = t.model?.vocab;
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new ModelError(`${where}: tokenizer.json has no model.vocab object (token → id) to remap`);
  const added = Array.isArray(t.added_tokens)
    ? (t.added_tokens as { id?: unknown; content?: unknown }[])
    : [];
  const out = { ...(v as Record<string, number>) };
  for (const a of added) if (typeof a.content === 'string' && typeof a.id === 'number') out[a.content] = a.id;
  return out;
}

/** For each new id, the old id whose row it takes (-1: the mean row). */
export function rowSources(old: Record<string, number>, next: Record<string, number>): Int32Array {
  const n = Math.max(...Object.values(next)) + 1;
  const src = new Int32Array(n).fill(-1);
  for (const [word, i] of Object.entries(next)) {
    const cap = word.charAt(0).toUpperCase() + word.slice(1).toLowerCase();
    src[i] = old[word] ?? old[cap] ?? -1;
  }
  return src;
}

/** A [rows, width] F32 or BF16 tensor with its rows picked by `src` (-1: the mean of the old rows). */
export function remapRows(t: HostTensor, src: Int32Array): HostTensor {
  if (t.shape.length !== 2 || (t.dtype !== 'F32' && t.dtype !== 'BF16'))
    throw new ModelError(
      `token rows must be a 2-D F32 or BF16 tensor, got ${t.dtype} [${t.shape.join(', ')}]`,
    );
  const [rows, width] = t.shape;
  const get =
    t.dtype === 'F32' ? (i: number) => t.data[i] as number : (i: number) => bf16ToF32(t.data[i] as number);
  const mean = new Float64Array(width);
  for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) mean[c] += get(r * width + c) / rows;
  const out = t.dtype === 'F32' ? new Float32Array(src.length * width) : new Uint16Array(src.length * width);
  const put =
    t.dtype === 'F32'
      ? (i: number, x: number) => (out[i] = x)
      : (i: number, x: number) => (out[i] = f32ToBf16(x));
  for (let r = 0; r < src.length; r++)
    for (let c = 0; c < width; c++) put(r * width + c, src[r] >= 0 ? get(src[r] * width + c) : mean[c]);
  return { dtype: t.dtype, shape: [src.length, width], data: out };
}

/**
 * `dir` (a checkpoint) with the tokenizer `files['tokenizer.json']`: null when every token of it has the same
 * id in the checkpoint's tokenizer (nothing to move), else a copy under `out` with the token rows remapped, `vocab_size` set and the new tokenizer files.
 * Returns the directory to load and how many tokens kept trained rows.
 */
export async function withTokenizer(
  dir: string,
  files: Record<string, string>,
  out: string,
): Promise<{ dir: string; kept: number; tokens: number } | null> {
  const oldJson = await readFile(join(dir, 'tokenizer.json'), 'utf8').catch(() => null);
  if (oldJson === null)
    throw new ModelError(`${dir}: no tokenizer.json, so its token rows cannot be remapped`);
  const old = vocabularyOf(oldJson, dir);
  const next = vocabularyOf(files['tokenizer.json'], 'model.tokenizer');
  // The same ids (a TimeViper's tokenizer adds its specials after them): nothing moves.
  if (Object.entries(next).every(([w, i]) => old[w] === i)) return null;
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  if (!('vocab_size' in config))
    throw new InputError(
      `${dir}: model.tokenizer with a checkpoint remaps Vamba and Qwen2-VL checkpoints (a top-level vocab_size); this config has none`,
    );
  const weights = await SafetensorsFile.open(join(dir, 'model.safetensors'));
  const src = rowSources(old, next);
  const tensors: [string, HostTensor][] = [];
  try {
    if (!TOKEN_ROWS.some((n) => weights.has(n)))
      throw new ModelError(`${dir}: none of ${TOKEN_ROWS.join(', ')} in model.safetensors: nothing to remap`);
    for (const name of weights.names()) {
      const t = await weights.read(name);
      tensors.push([name, TOKEN_ROWS.includes(name) ? remapRows(t, src) : t]);
    }
  } finally {
    await weights.close();
  }
  await mkdir(out, { recursive: true });
  await saveSafetensors(join(out, 'model.safetensors'), tensors);
  await writeFile(
    join(out, 'config.json'),
    `${JSON.stringify({ ...config, vocab_size: src.length }, null, 2)}\n`,
  );
  for (const f of ['generation_config.json', 'preprocessor_config.json'])
    await copyFile(join(dir, f), join(out, f)).catch(() => {});
  for (const [f, text] of Object.entries(files)) await writeFile(join(out, f), text);
  let kept = 0;
  for (const s of src) if (s >= 0) kept++;
  return { dir: out, kept, tokens: src.length };
}
