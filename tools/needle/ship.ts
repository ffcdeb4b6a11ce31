/**
 * The tiny needle models trained by `longshot train` (bench/gpu/ship-train.sh), from results to shipped:
 *
 *   node --import tsx tools/needle/ship.ts results <dir>
 *       <dir>/<model>/eval.jsonl (`longshot needle eval --json`, one report per held-out set) and
 *       <dir>/<model>/train.json (`longshot train --json`) → <dir>/results.json and <dir>/results.md (the table)
 *   node --import tsx tools/needle/ship.ts bf16 <checkpoint dir> <out dir>
 *       the model files of a checkpoint with its f32 weights rounded to bf16, the shipped models' dtype (a CPU
 *       run trains and saves in f32: twice the bytes in the repository); evaluate this copy, then install it
 *   node --import tsx tools/needle/ship.ts install <model> <checkpoint dir> <results.json> [--dry-run]
 *       copies the checkpoint's model files into models/needle-<model>-tiny/ (replacing them) and writes the
 *       model's results into its model card (docs/models/…), between `<!-- ship-results:<model> -->` markers
 *       (added under "## Trained by longshot train" the first time). --dry-run prints what it would do.
 *       A checkpoint with f32 weights is refused (make its bf16 copy first).
 *   node --import tsx tools/needle/ship.ts average <a dir> <b dir> <w> <out dir>
 *       the weighted average (1 − w)·a + w·b of two checkpoints of one model, in bf16, with b's config and
 *       tokenizer; a's token rows first move to b's tokenizer when their tokenizers differ (the shipped Vamba is
 *       0.8·v2 + 0.2·v1: session 16's v2 run and the v1 model it started from).
 *
 * <model>: vamba, qwen2vl, timeviper or mambamia. Issue 27's aims are Vamba's (held-out sets of
 * tools/needle/heldout_sets.sh): the table marks each set that meets its aim.
 */
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type HostTensor, toRuntime } from '../../src/io/convert.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { f32ToBf16 } from '../../src/runtime/dtype.js';
import type { TrainReport } from '../../src/train/trainer.js';
import { remapRows, rowSources, TOKEN_ROWS, vocabularyOf } from '../../src/train/vocab.js';

export const MODELS = ['vamba', 'qwen2vl', 'timeviper', 'mambamia'] as const;
export type ShipModel = (typeof MODELS)[number];

/** Issue 27's aims for the embedded (Vamba) model, by held-out set. */
export const AIMS: Record<string, number> = {
  '16-64': 0.9,
  '256': 0.9,
  '1024': 0.8,
  count: 0.85,
  reworded: 0.85,
  unanswerable: 0.8,
  'ffmpeg-patterns': 0.75,
};

/** Where each model's card is, and its name in it. */
const CARDS: Record<ShipModel, string> = {
  vamba: 'docs/models/needle-vamba-tiny.md',
  qwen2vl: 'docs/models/needle-vamba-tiny.md',
  timeviper: 'docs/models/needle-timeviper-tiny.md',
  mambamia: 'docs/models/needle-mambamia-tiny.md',
};

/** The files of a model directory that ship (the trainer's state stays behind). */
const MODEL_FILES = [
  'config.json',
  'model.safetensors',
  'tokenizer.json',
  'tokenizer_config.json',
  'generation_config.json',
  'preprocessor_config.json',
];

interface Tally {
  correct: number;
  total: number;
}
interface SetResult extends Tally {
  short: Tally;
  mcq: Tally;
  unanswerable: Tally;
  byTask: Record<string, Tally>;
}
interface ModelResult {
  train: Pick<
    TrainReport,
    'steps' | 'startStep' | 'seconds' | 'stepsPerSecond' | 'dataWait' | 'finalLoss' | 'device'
  > | null;
  sets: Record<string, SetResult>;
}
export interface ShipResults {
  written: string;
  models: Partial<Record<ShipModel, ModelResult>>;
}

const pick = (t: Tally | undefined): Tally => ({ correct: t?.correct ?? 0, total: t?.total ?? 0 });

async function readJsonLines(path: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Collects a ship-train output directory's reports. */
export async function collect(dir: string): Promise<ShipResults> {
  const models: ShipResults['models'] = {};
  for (const m of MODELS) {
    const has = await stat(join(dir, m)).catch(() => null);
    if (!has) continue;
    // `longshot train --json` prints its report as one (indented) JSON document.
    const text = await readFile(join(dir, m, 'train.json'), 'utf8').catch(() => '');
    let train: Record<string, unknown> | null = null;
    try {
      train = text.trim() ? (JSON.parse(text) as Record<string, unknown>) : null;
    } catch {
      train = null;
    }
    const sets: Record<string, SetResult> = {};
    for (const r of await readJsonLines(join(dir, m, 'eval.jsonl'))) {
      const byForm = r.byForm as Record<string, Tally>;
      sets[basename(dirname(String(r.data)))] = {
        ...pick(r as unknown as Tally),
        short: pick(byForm.short),
        mcq: pick(byForm.mcq),
        unanswerable: pick(r.unanswerable as Tally),
        byTask: Object.fromEntries(
          Object.entries(r.byTask as Record<string, Tally>).map(([k, v]) => [k, pick(v)]),
        ),
      };
    }
    models[m] = {
      train: train
        ? {
            steps: train.steps as number,
            startStep: train.startStep as number,
            seconds: train.seconds as number,
            stepsPerSecond: train.stepsPerSecond as number,
            dataWait: (train.dataWait as number | undefined) ?? 0,
            finalLoss: train.finalLoss as number | null,
            device: train.device as string,
          }
        : null,
      sets,
    };
  }
  return { written: new Date().toISOString(), models };
}

const pct = (t: Tally | undefined) =>
  t?.total ? `${((100 * t.correct) / t.total).toFixed(1)}% (${t.correct}/${t.total})` : '–';

/** The Markdown table: held-out sets by model, Vamba's aims, then the training run. */
export function table(r: ShipResults, only?: ShipModel): string {
  const ms = (only ? [only] : MODELS).filter((m) => r.models[m]);
  const sets = [...new Set(ms.flatMap((m) => Object.keys(r.models[m]!.sets)))].sort(
    (a, b) => order(a) - order(b),
  );
  const aimed = ms.includes('vamba') && (only === undefined || only === 'vamba');
  const head = ['held-out set', ...ms.map((m) => `needle-${m}-tiny`), ...(aimed ? ['aim (Vamba)'] : [])];
  const rows = sets.map((s) => {
    const cells = ms.map((m) => pct(r.models[m]!.sets[s]));
    if (aimed) {
      const aim = AIMS[s];
      const v = r.models.vamba!.sets[s];
      cells.push(
        aim === undefined
          ? ''
          : `≥ ${aim * 100}%${v?.total ? (v.correct / v.total >= aim ? ' ✓' : ' ✗') : ''}`,
      );
    }
    return `| ${s} | ${cells.join(' | ')} |`;
  });
  const train = (f: (t: NonNullable<ModelResult['train']>) => string) =>
    ms.map((m) => {
      const t = r.models[m]!.train;
      return t ? f(t) : '–';
    });
  const pad = aimed ? [''] : [];
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows,
    `| unanswerable questions (all sets) | ${ms
      .map((m) => {
        const all = Object.values(r.models[m]!.sets).reduce(
          (a, s) => ({ correct: a.correct + s.unanswerable.correct, total: a.total + s.unanswerable.total }),
          { correct: 0, total: 0 },
        );
        return pct(all);
      })
      .join(' | ')}${aimed ? ' | ' : ''} |`,
    `| steps (this run) | ${[...train((t) => `${t.startStep} → ${t.steps}`), ...pad].join(' | ')} |`,
    `| training seconds, steps/s | ${[...train((t) => `${t.seconds.toFixed(0)} s, ${t.stepsPerSecond.toFixed(2)}`), ...pad].join(' | ')} |`,
    `| of which waiting for data | ${[...train((t) => `${t.dataWait.toFixed(0)} s`), ...pad].join(' | ')} |`,
    `| final loss | ${[...train((t) => t.finalLoss?.toFixed(4) ?? '–'), ...pad].join(' | ')} |`,
  ].join('\n');
}

const SET_ORDER = [
  '16-64',
  '256',
  '1024',
  'count',
  'reworded',
  'unanswerable',
  'ffmpeg-patterns',
  'patterns',
];
const order = (s: string) => (SET_ORDER.includes(s) ? SET_ORDER.indexOf(s) : SET_ORDER.length);

/** The card's text with the model's results block replaced (or added under "## Trained by longshot train"). */
export function updateCard(card: string, model: ShipModel, r: ShipResults): string {
  const begin = `<!-- ship-results:${model} -->`;
  const end = `<!-- /ship-results:${model} -->`;
  const t = r.models[model]?.train;
  const block = [
    begin,
    `**needle-${model}-tiny** as shipped: trained by \`longshot train recipes/needle-${model}-v2.json --device ${t?.device ?? 'cuda'}\` (bench/gpu/ship-train.sh; results of ${r.written.slice(0, 10)}); held-out sets of tools/needle/heldout_sets.sh, evaluated with \`longshot needle eval\` (\`--render\`: frames drawn again from each record; ffmpeg-patterns decoded from its MP4s).`,
    '',
    table(r, model),
    end,
  ].join('\n');
  const i = card.indexOf(begin);
  const j = card.indexOf(end);
  if (i >= 0 && j > i) return card.slice(0, i) + block + card.slice(j + end.length);
  const heading = '## Trained by longshot train';
  const at = card.indexOf(heading);
  if (at >= 0) {
    const after = at + heading.length;
    return `${card.slice(0, after)}\n\n${block}\n${card.slice(after)}`;
  }
  return `${card.trimEnd()}\n\n${heading}\n\n${block}\n`;
}

/** The names of a safetensors file's f32 tensors. */
async function f32Tensors(path: string): Promise<string[]> {
  await using file = await SafetensorsFile.open(path);
  return file.names().filter((n) => file.info(n).dtype === 'F32');
}

/** `torch_dtype` set to bfloat16 wherever a config (or a sub-config) states one. */
function bf16Config(c: unknown): unknown {
  if (Array.isArray(c) || c === null || typeof c !== 'object') return c;
  return Object.fromEntries(
    Object.entries(c).map(([k, v]) => [k, k === 'torch_dtype' ? 'bfloat16' : bf16Config(v)]),
  );
}

/** The checkpoint's model files in `out`, its f32 weights rounded to bf16 (other dtypes as they are). */
export async function bf16Copy(checkpoint: string, out: string): Promise<void> {
  const have = new Set(await readdir(checkpoint));
  if (!have.has('model.safetensors')) throw new Error(`${checkpoint}: no model.safetensors`);
  await mkdir(out, { recursive: true });
  await using file = await SafetensorsFile.open(join(checkpoint, 'model.safetensors'));
  const tensors: [string, HostTensor][] = [];
  for (const name of file.names()) {
    const t = await file.read(name);
    if (t.dtype !== 'F32') tensors.push([name, t]);
    else
      tensors.push([
        name,
        { dtype: 'BF16', shape: t.shape, data: Uint16Array.from(t.data as Float32Array, f32ToBf16) },
      ]);
  }
  await saveSafetensors(join(out, 'model.safetensors'), tensors, { metadata: { ...file.metadata } });
  await copyModelFiles(checkpoint, have, out);
}

/** The model files of `dir` but its weights into `out`, config.json's torch_dtype set to bfloat16. */
async function copyModelFiles(dir: string, have: Set<string>, out: string): Promise<void> {
  for (const f of MODEL_FILES.filter((f) => f !== 'model.safetensors' && have.has(f))) {
    if (f !== 'config.json') await copyFile(join(dir, f), join(out, f));
    else {
      const config = bf16Config(JSON.parse(await readFile(join(dir, f), 'utf8')));
      await writeFile(join(out, f), `${JSON.stringify(config, null, 2)}\n`);
    }
  }
}

/**
 * (1 − w)·a + w·b for every tensor, in bf16, with b's model files beside it. a's token rows first move to b's
 * tokenizer's ids (src/train/vocab.ts, as a recipe's model.tokenizer does; the same ids when the tokenizers agree);
 * every other tensor must have the same name and shape in both.
 */
export async function average(a: string, b: string, w: number, out: string): Promise<void> {
  if (!(w >= 0 && w <= 1)) throw new Error(`the weight of ${b} must be between 0 and 1, got ${w}`);
  const have = new Set(await readdir(b));
  const vocab = async (dir: string) => {
    const json = await readFile(join(dir, 'tokenizer.json'), 'utf8').catch(() => null);
    if (json === null) throw new Error(`${dir}: no tokenizer.json`);
    return vocabularyOf(json, dir);
  };
  const rows = rowSources(await vocab(a), await vocab(b));
  await using fa = await SafetensorsFile.open(join(a, 'model.safetensors'));
  await using fb = await SafetensorsFile.open(join(b, 'model.safetensors'));
  const extra = fa.names().filter((n) => !fb.has(n));
  if (extra.length) throw new Error(`${a} has tensors that ${b} lacks (${extra[0]}, …): not one model`);
  const tensors: [string, HostTensor][] = [];
  for (const name of fb.names()) {
    if (!fa.has(name)) throw new Error(`${b} has ${name}, ${a} does not: not one model`);
    const tb = await fb.read(name);
    let ta = await fa.read(name);
    if (TOKEN_ROWS.includes(name)) ta = remapRows(ta, rows);
    if (ta.shape.join() !== tb.shape.join())
      throw new Error(`${name}: [${ta.shape}] in ${a}, [${tb.shape}] in ${b}: not one model`);
    const x = toRuntime(ta, 'f32', `${a}: ${name}`) as Float32Array;
    const y = toRuntime(tb, 'f32', `${b}: ${name}`) as Float32Array;
    const avg = new Uint16Array(y.length);
    for (let i = 0; i < y.length; i++) avg[i] = f32ToBf16((1 - w) * x[i] + w * y[i]);
    tensors.push([name, { dtype: 'BF16', shape: tb.shape, data: avg }]);
  }
  await mkdir(out, { recursive: true });
  await saveSafetensors(join(out, 'model.safetensors'), tensors);
  await copyModelFiles(b, have, out);
}

/** The repository root (models/ and docs/models/ are under it). */
const REPO = join(import.meta.dirname, '../..');

export async function install(
  model: ShipModel,
  checkpoint: string,
  resultsPath: string,
  dry: boolean,
  root = REPO,
): Promise<void> {
  const results = JSON.parse(await readFile(resultsPath, 'utf8')) as ShipResults;
  if (!results.models[model])
    throw new Error(`${resultsPath} holds no results for ${model}; run tools/needle/ship.ts results first`);
  const have = new Set(await readdir(checkpoint));
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json'])
    if (!have.has(f))
      throw new Error(`${checkpoint}: no ${f}; pass a model directory (runs/ship/${model}/model)`);
  const f32 = await f32Tensors(join(checkpoint, 'model.safetensors'));
  if (f32.length)
    throw new Error(
      `${checkpoint}: ${f32.length} f32 tensors (${f32[0]}, …); the shipped models are bf16: run \`ship.ts bf16 ${checkpoint} <out>\`, evaluate that copy and install it`,
    );
  const target = join(root, 'models', `needle-${model}-tiny`);
  const card = join(root, CARDS[model]);
  const files = MODEL_FILES.filter((f) => have.has(f));
  if (dry) {
    process.stdout.write(
      `would copy ${files.join(', ')} from ${checkpoint} to ${target}\nwould update ${card}:\n\n`,
    );
    process.stdout.write(`${table(results, model)}\n`);
    return;
  }
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { recursive: true });
  for (const f of files) await copyFile(join(checkpoint, f), join(target, f));
  await writeFile(card, updateCard(await readFile(card, 'utf8'), model, results));
  process.stdout.write(`installed ${checkpoint} as ${target}; updated ${card}\n`);
}

const isModel = (m: string): m is ShipModel => (MODELS as readonly string[]).includes(m);

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === 'results' && rest.length === 1) {
    const r = await collect(rest[0]);
    await writeFile(join(rest[0], 'results.json'), `${JSON.stringify(r, null, 2)}\n`);
    const md = table(r);
    await writeFile(join(rest[0], 'results.md'), `${md}\n`);
    process.stdout.write(`${md}\n`);
    return;
  }
  if (cmd === 'bf16' && rest.length === 2) {
    await bf16Copy(rest[0], rest[1]);
    process.stdout.write(`wrote ${rest[1]}: the model files of ${rest[0]} in bf16\n`);
    return;
  }
  if (cmd === 'average' && rest.length === 4) {
    await average(rest[0], rest[1], Number(rest[2]), rest[3]);
    process.stdout.write(
      `wrote ${rest[3]}: ${+(1 - Number(rest[2])).toFixed(6)}·${rest[0]} + ${rest[2]}·${rest[1]} in bf16\n`,
    );
    return;
  }
  const dry = rest.includes('--dry-run');
  const args = rest.filter((a) => a !== '--dry-run');
  if (cmd === 'install' && args.length === 3 && isModel(args[0]))
    return install(args[0], args[1], args[2], dry);
  throw new Error(
    `usage: ship.ts results <dir> | ship.ts bf16 <model dir> <out dir> | ship.ts average <a dir> <b dir> <weight of b> <out dir> | ship.ts install <${MODELS.join('|')}> <model dir> <results.json> [--dry-run]`,
  );
}

if (process.argv[1] && import.meta.url.endsWith(basename(process.argv[1])))
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`ship.ts: ${(e as Error).message}\n`);
    process.exit(1);
  });
