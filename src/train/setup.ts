/**
 * From a recipe to what the loop needs: the backend, the model (from scratch, a checkpoint, a Qwen2-VL
 * turned into a Vamba, a TSTAR around a Qwen2-VL's tower and LLM, or the last checkpoint of a resumed run), its
 * tokenizer, the files every checkpoint carries besides the weights, and the teacher of a distillation.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, ModelError } from '../errors.js';
import { isObject } from '../io/json-fields.js';
import { Tokenizer } from '../io/tokenizer.js';
import { needleTokenizerConfig, needleTokenizerJson } from '../needle/tokenizer.js';
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import type { ExtraFiles } from './checkpoint.js';
import type { TrainModel } from './model.js';
import { Qwen2VLTrainModel } from './qwen2vl.js';
import { type Recipe, type RecipeFamily, TRAINABLE_FAMILIES } from './recipe.js';
import { TimeViperTrainModel, timeViperScratch } from './timeviper.js';
import { TstarTrainModel } from './tstar.js';
import { VambaTrainModel, vambaFromQwen2VL } from './vamba.js';
import { withTokenizer } from './vocab.js';

/** How a trainable family's TrainModel is made: from a config (from scratch) or from a checkpoint directory. */
interface TrainFamily {
  scratch(
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    seed: number,
    imEnd: number,
  ): TrainModel | Promise<TrainModel>;
  load(
    dir: string,
    configJson: Record<string, unknown>,
    backend: Backend,
    dtype: DType,
    imEnd: number,
  ): Promise<TrainModel>;
}

const FAMILIES: Partial<Record<RecipeFamily, TrainFamily>> = {
  vamba: VambaTrainModel,
  qwen2vl: Qwen2VLTrainModel,
  mambamia: TstarTrainModel,
};

/** Qwen2-VL's processor settings of the needle models (tools/reference/train_needle.py save_model). */
const NEEDLE_PREPROCESSOR = {
  image_processor_type: 'Qwen2VLImageProcessor',
  processor_class: 'Qwen2VLProcessor',
  do_resize: true,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  do_convert_rgb: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
  min_pixels: 56 * 56,
  max_pixels: 224 * 224,
  patch_size: 14,
  temporal_patch_size: 2,
  merge_size: 2,
};

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

async function readJson(path: string): Promise<Record<string, unknown>> {
  let v: unknown;
  try {
    v = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new ModelError(`${path}: cannot read it (${(e as Error).message})`);
  }
  if (!isObject(v)) throw new ModelError(`${path}: expected a JSON object`);
  return v;
}

/** A directory's text files that travel with the weights (tokenizer, processor, generation config). */
async function companionFiles(dir: string): Promise<ExtraFiles> {
  const out: ExtraFiles = {};
  for (const f of [
    'tokenizer.json',
    'tokenizer_config.json',
    'generation_config.json',
    'preprocessor_config.json',
    'video_preprocessor_config.json',
    'special_tokens_map.json',
    'vocab.json',
    'merges.txt',
    'chat_template.json',
  ]) {
    const text = await readFile(join(dir, f), 'utf8').catch(() => null);
    if (text !== null) out[f] = text;
  }
  return out;
}

export interface Setup {
  model: TrainModel;
  tokenizer: Tokenizer;
  /** Files of every checkpoint but config.json and the weights. */
  files: ExtraFiles;
}

/**
 * The model a run starts from. `resumeDir`: the checkpoint of a resumed run (its weights and files);
 * otherwise the recipe's `model.from`.
 */
export async function setupModel(
  recipe: Recipe,
  backend: Backend,
  dtype: DType,
  resumeDir: string | null,
  note?: (line: string) => void,
): Promise<Setup> {
  const m = recipe.model;
  // TimeViper is not in the table: its tokenizer shapes it (the answer end, the vocabulary, `<image>`).
  const family = FAMILIES[m.family];
  if (!(family || m.family === 'timeviper') || !TRAINABLE_FAMILIES.includes(m.family))
    throw new ModelError(
      `recipe ${recipe.path}: training ${m.family} is not implemented yet (longshot train builds a training forward for ${TRAINABLE_FAMILIES.join(', ')}); see docs/training.md`,
    );
  const load = async (dir: string): Promise<Setup> => {
    const files = await companionFiles(dir);
    if (!files['tokenizer.json'])
      throw new ModelError(`${dir}: no tokenizer.json; a training run needs the model's tokenizer`);
    const tokenizer = await Tokenizer.fromDir(dir);
    const config = await readJson(join(dir, 'config.json'));
    const model = family
      ? await family.load(dir, config, backend, dtype, imEndOf(tokenizer, dir))
      : await TimeViperTrainModel.load(dir, config, backend, dtype, tokenizer);
    return { model, tokenizer, files };
  };
  if (resumeDir) return load(resumeDir);
  if (m.from !== 'scratch') {
    if (m.initCrossAttentionFromSelfAttention) return vambaFromQwen2VL(m.from, recipe.seed, load);
    if (!m.tokenizer) return load(m.from);
    const remapped = await withTokenizer(
      m.from,
      await tokenizerFiles(recipe),
      join(recipe.output.dir, 'init-remapped'),
    );
    if (remapped)
      note?.(
        `${m.from}: token rows remapped to model.tokenizer (${remapped.kept} of ${remapped.tokens} tokens kept trained rows) in ${remapped.dir}`,
      );
    return load(remapped?.dir ?? m.from);
  }
  const files = await tokenizerFiles(recipe);
  if (!family) return timeViperScratch(recipe, files, backend, dtype);
  files['preprocessor_config.json'] ??= json(NEEDLE_PREPROCESSOR);
  const config = m.config!;
  // A composite config (TSTAR) keeps the LLM's token ids in text_config.
  const ids = { ...(isObject(config.text_config) ? config.text_config : {}), ...config };
  files['generation_config.json'] ??= json({
    bos_token_id: ids.bos_token_id,
    eos_token_id: [ids.eos_token_id],
    pad_token_id: ids.pad_token_id,
    do_sample: false,
  });
  const tokenizer = new Tokenizer(
    JSON.parse(files['tokenizer.json']) as never,
    JSON.parse(files['tokenizer_config.json'] ?? '{}') as never,
  );
  const vocab = tokenizer.vocabSize;
  if (config.vocab_size !== undefined && config.vocab_size !== vocab)
    throw new InputError(
      `${recipe.path}: model.config.vocab_size is ${config.vocab_size} but the tokenizer has ${vocab} tokens; make them equal`,
    );
  const args = [
    { ...config, vocab_size: vocab },
    backend,
    dtype,
    recipe.seed,
    imEndOf(tokenizer, recipe.path),
  ] as const;
  const model = m.initFromQwen2VL
    ? await TstarTrainModel.fromQwen2VL(...args, {
        dir: m.initFromQwen2VL,
        tokenizerJson: files['tokenizer.json'],
        note,
      })
    : await family.scratch(...args);
  return { model, tokenizer, files };
}

/** The files of the recipe's `model.tokenizer` (a needle version, or a directory's tokenizer files). */
async function tokenizerFiles(recipe: Recipe): Promise<ExtraFiles> {
  const t = recipe.model.tokenizer;
  if (t === 'needle-v1' || t === 'needle-v2')
    return {
      'tokenizer.json': json(needleTokenizerJson(t === 'needle-v1' ? 1 : 2)),
      'tokenizer_config.json': json(needleTokenizerConfig()),
    };
  const files = await companionFiles(t);
  if (!files['tokenizer.json'])
    throw new InputError(`${recipe.path}: model.tokenizer ${t} holds no tokenizer.json`);
  return files;
}

function imEndOf(tok: Tokenizer, where: string): number {
  const id = tok.tokenToId('<|im_end|>');
  if (id === undefined)
    throw new ModelError(`${where}: the tokenizer has no <|im_end|> token (answers end with it)`);
  return id;
}

/** The teacher of a distillation: any Vamba checkpoint with the student's tokenizer. */
export async function setupTeacher(
  dir: string,
  backend: Backend,
  dtype: DType,
  student: Tokenizer,
): Promise<TrainModel> {
  const s = await load(dir);
  if (s.tokenizer.vocabSize !== student.vocabSize)
    throw new InputError(
      `distill.teacher ${dir}: its tokenizer has ${s.tokenizer.vocabSize} tokens, the student's ${student.vocabSize}; the teacher must share the student's vocabulary`,
    );
  return s.model;

  async function load(d: string) {
    const tokenizer = await Tokenizer.fromDir(d);
    const model = await VambaTrainModel.load(
      d,
      await readJson(join(d, 'config.json')),
      backend,
      dtype,
      imEndOf(tokenizer, d),
    );
    return { model, tokenizer };
  }
}
