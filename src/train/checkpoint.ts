/**
 * Training checkpoints: a directory every other command loads as a model (config.json, model.safetensors,
 * tokenizer, generation and preprocessor configs: the family's own layout), plus `trainer/` with what a
 * resumed run needs — the step, the RNG state (which is the data position), the loss history, and the
 * optimizer state (f32 masters of bf16 weights, AdamW moments) in trainer/optimizer.safetensors.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { saveSafetensors } from '../io/safetensors-write.js';
import type { Tensor } from '../runtime/tensor.js';
import type { AdamW } from './optimizer.js';

export interface TrainState {
  /** The recipe's name (a resumed run must use the same recipe). */
  recipe: string;
  step: number;
  /** The trainer's RNG (Random.state): the next draw of data. */
  rng: number;
  /** Steps of the echo group drawn from `rng` already trained (batch.echo; 0 or absent: none). */
  echoOffset?: number;
  tokens: number;
  examples: number;
  /** (step, loss) of every logged step, and (step, accuracy) of every evaluation: the curve. */
  losses: [number, number][];
  evals: [number, number][];
}

/** Where the data stream is: the RNG's state and the steps of its echo group already trained. */
export type DataPosition = Required<Pick<TrainState, 'rng' | 'echoOffset'>>;

/** Files a checkpoint directory gets besides the weights: name → contents. */
export type ExtraFiles = Record<string, string>;

export const STATE_DIR = 'trainer';
export const LAST_FILE = 'last-checkpoint.json';

/**
 * Writes a checkpoint into `dir` (via a temporary directory renamed into place, so a crash never leaves a
 * half-written checkpoint under its name) and records it in `<out>/last-checkpoint.json`.
 */
export async function saveCheckpoint(
  out: string,
  name: string,
  o: {
    weights: ReadonlyMap<string, Tensor>;
    files: ExtraFiles;
    opt: AdamW;
    state: TrainState;
  },
): Promise<string> {
  const dir = join(out, name);
  const tmp = `${dir}.partial`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, STATE_DIR), { recursive: true });
  await saveSafetensors(join(tmp, 'model.safetensors'), o.weights, { metadata: { format: 'pt' } });
  for (const [f, text] of Object.entries(o.files)) await writeFile(join(tmp, f), text);
  await saveSafetensors(join(tmp, STATE_DIR, 'optimizer.safetensors'), o.opt.stateTensors());
  await writeFile(join(tmp, STATE_DIR, 'state.json'), `${JSON.stringify(o.state)}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  await writeFile(join(out, LAST_FILE), `${JSON.stringify({ checkpoint: name, step: o.state.step })}\n`);
  return dir;
}

/** The directory of the last checkpoint under `out`, or null when none was written. */
export async function lastCheckpoint(out: string): Promise<string | null> {
  try {
    const j = JSON.parse(await readFile(join(out, LAST_FILE), 'utf8')) as { checkpoint: string };
    return join(out, j.checkpoint);
  } catch {
    return null;
  }
}

/** A checkpoint's trainer state and optimizer tensors (f32 by name). */
export async function readTrainState(
  dir: string,
): Promise<{ state: TrainState; optimizer: Map<string, Float32Array> }> {
  let state: TrainState;
  try {
    state = JSON.parse(await readFile(join(dir, STATE_DIR, 'state.json'), 'utf8'));
  } catch (e) {
    throw new InputError(
      `${dir}: no trainer state (${(e as Error).message}); --resume needs a checkpoint written by longshot train`,
    );
  }
  const f = await SafetensorsFile.open(join(dir, STATE_DIR, 'optimizer.safetensors'));
  try {
    const optimizer = new Map<string, Float32Array>();
    for (const n of f.names()) optimizer.set(n, (await f.read(n)).data as Float32Array);
    return { state, optimizer };
  } finally {
    await f.close();
  }
}
