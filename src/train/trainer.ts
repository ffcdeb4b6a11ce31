/**
 * The training loop of `longshot train`: per step a frame count is drawn, then the videos of that length
 * (fewer of longer ones at `batch.baseFrames`: equal tokens per step, as train_needle.py), split into
 * `accumulate` micro-batches whose gradients add up; clipping, the warm-up + cosine learning rate, AdamW.
 * Every `logEvery` steps a line goes to log.jsonl; every `evalEvery` the held-out set is answered greedily;
 * every `checkpointEvery` a checkpoint is written (resumable: weights, optimizer, step, RNG = data position).
 */
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { vambaPrompt } from '../models/vamba/prompt.js';
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import { Random } from '../util/random.js';
import {
  type DataPosition,
  lastCheckpoint,
  readTrainState,
  saveCheckpoint,
  type TrainState,
} from './checkpoint.js';
import { lossCurvePng } from './curve.js';
import { drawLength, drawSteps, type Example, openSource } from './data.js';
import type { GradEngine } from './engine.js';
import { trainableNames } from './freeze.js';
import { exampleObjective, type LossValue, readLosses, type TeacherTargets, topKTargets } from './loss.js';
import { batches, padded, syncLogits, type TrainModel, teacherForced } from './model.js';
import { AdamW } from './optimizer.js';
import type { Recipe } from './recipe.js';
import { learningRate } from './schedule.js';
import { setupModel, setupTeacher } from './setup.js';
import { type MicroBatch, optimizerStep, splitEven } from './step.js';

export interface EvalResult {
  step: number;
  correct: number;
  total: number;
  accuracy: number;
  /** [right, asked] per group (needle: task/form) and per frame count. */
  byGroup: Record<string, [number, number]>;
  byFrames: Record<string, [number, number]>;
}

export interface StepInfo {
  step: number;
  steps: number;
  loss: number;
  kl: number | null;
  lr: number;
  gradNorm: number;
  tokens: number;
  videos: number;
  frames: number;
  skipped: boolean;
  seconds: number;
  /** Of those seconds, the time the loop waited for its data (rendering or reading that the step ahead did not hide). */
  dataWait: number;
}

export interface TrainReport {
  recipe: string;
  device: string;
  dtype: DType;
  trainable: number;
  parameters: number;
  steps: number;
  startStep: number;
  /** Seconds of training steps (evaluations and checkpoints left out). */
  seconds: number;
  stepsPerSecond: number;
  /** Of the seconds, those spent waiting for data. */
  dataWait: number;
  finalLoss: number | null;
  skipped: number;
  eval: EvalResult | null;
  checkpoint: string;
  log: string;
  curve: string;
}

export interface TrainOptions {
  recipe: Recipe;
  backend: Backend;
  engine: GradEngine;
  /** Continue from the last checkpoint under the output directory. */
  resume?: boolean;
  /** Stop after this step (with a checkpoint), as if interrupted: the schedule still runs to its end. */
  stopAfter?: number;
  /** Stop after the step during which this many seconds of training passed (evaluated and saved there). */
  maxSeconds?: number;
  /**
   * With maxSeconds: the cosine decay runs over those seconds of training, or over the steps when they end
   * first (train_needle.py --max-seconds), so a time-capped run still anneals. Not for resumed runs.
   */
  timeSchedule?: boolean;
  onStep?: (s: StepInfo) => void;
  onEval?: (e: EvalResult) => void;
  /** Human-readable notes (what was frozen, where checkpoints go). */
  note?: (line: string) => void;
}

const ignoreNote = () => {};

export async function train(o: TrainOptions): Promise<TrainReport> {
  const { recipe, backend, engine } = o;
  const note = o.note ?? ignoreNote;
  const out = recipe.output.dir;
  await mkdir(out, { recursive: true });
  const dtype: DType = recipe.precision === 'bf16' && backend.name !== 'cpu' ? 'bf16' : 'f32';
  if (recipe.precision === 'bf16' && dtype === 'f32') note('precision bf16: the CPU backend trains in f32');

  const resumeDir = o.resume ? await lastCheckpoint(out) : null;
  if (o.resume && !resumeDir)
    throw new InputError(`--resume: no checkpoint under ${out} yet (${out}/last-checkpoint.json is missing)`);
  const { model, tokenizer, files } = await setupModel(recipe, backend, dtype, resumeDir, note);
  const teacher = recipe.distill
    ? await setupTeacher(recipe.distill.teacher, backend, dtype, tokenizer)
    : null;
  const prompt = (q: string) => model.prompt?.(q) ?? vambaPrompt([{ role: 'user', content: q }]);
  const ctx = { tokenizer, prompt, answerEnd: model.answerEnd };
  const trainData = await openSource(recipe.data.train, ctx);
  const evalData = recipe.data.eval ? await openSource(recipe.data.eval, ctx) : null;
  try {
    // ---- what trains ----
    const names = [...model.weights.keys()];
    const candidates = names.filter((n) => !model.untrainable.has(n));
    const trainable = trainableNames(
      candidates,
      { train: recipe.train ?? undefined, freeze: recipe.freeze },
      `recipe ${recipe.path}`,
    );
    for (const [n, why] of model.untrainable) if (recipe.train?.length) note(`${n} stays fixed: ${why}`);
    const opt = new AdamW(new Map(trainable.map((n) => [n, model.weights.get(n)!])), recipe.optimizer);
    const count = (ns: readonly string[]) => ns.reduce((a, n) => a + model.weights.get(n)!.size, 0);
    note(
      `${recipe.name}: ${count(trainable).toLocaleString('en-US')} of ${count(names).toLocaleString('en-US')} parameters train (${dtype} weights${dtype === 'bf16' ? ', f32 masters' : ''}) on ${backend.name}; data: ${trainData.description}`,
    );

    // ---- state: fresh or resumed ----
    let state: TrainState = {
      recipe: recipe.name,
      step: 0,
      rng: new Random(recipe.seed).state,
      tokens: 0,
      examples: 0,
      losses: [],
      evals: [],
    };
    const logPath = join(out, 'log.jsonl');
    if (resumeDir) {
      const r = await readTrainState(resumeDir);
      if (r.state.recipe !== recipe.name)
        throw new InputError(
          `--resume: ${resumeDir} was written by recipe "${r.state.recipe}", not "${recipe.name}"; resume with the same recipe`,
        );
      opt.load(r.optimizer, r.state.step);
      state = r.state;
      // The log keeps the lines up to the checkpoint: what follows is written again.
      const lines = (await readFile(logPath, 'utf8').catch(() => '')).split('\n').filter(Boolean);
      await writeFile(
        logPath,
        lines
          .filter((l) => (JSON.parse(l) as { step: number }).step <= state.step)
          .map((l) => `${l}\n`)
          .join(''),
      );
      note(`resumed from ${resumeDir} at step ${state.step}`);
    } else await writeFile(logPath, '');
    const rng = new Random(state.rng);
    let dataPosition: DataPosition = { rng: state.rng, echoOffset: state.echoOffset ?? 0 };
    const evalSet = evalData ? await evalData.fixed(recipe.data.eval!.count) : null;

    // ---- the loop ----
    const s = recipe.schedule;
    const t0 = performance.now();
    const startStep = state.step;
    let lastEval: EvalResult | null = null;
    let lastLoss: number | null = null;
    let skipped = 0;
    let checkpoint = resumeDir ?? '';
    /** Time in evaluation and checkpoints: not part of steps/s. */
    let asideMs = 0;
    const save = async () => {
      checkpoint = await saveCheckpoint(out, `checkpoint-${state.step}`, {
        weights: model.weights,
        files: {
          ...files,
          'config.json': `${JSON.stringify({ ...model.configJson, torch_dtype: dtype === 'bf16' ? 'bfloat16' : 'float32' }, null, 2)}\n`,
        },
        opt,
        state: { ...state, ...dataPosition },
      });
      await writeFile(join(out, 'loss.png'), lossCurvePng(state.losses, state.evals));
    };
    const last = Math.min(s.steps, o.stopAfter ?? s.steps);
    const b = recipe.batch;
    /**
     * The videos of a group of `b.echo` steps (one step without echo), drawn (rendering may still run) while the
     * steps before train; `skip` drops the group's first steps (a resumed run's data position inside a group).
     */
    const drawGroup = (skip: number): PendingStep[] => {
      const before = rng.state;
      const frames = drawLength(rng, trainData.lengths);
      const n = b.baseFrames ? Math.max(2, Math.floor((b.videos * b.baseFrames) / frames)) : b.videos;
      const all = drawSteps(trainData, rng, frames, n, b.echo);
      const after = rng.state;
      return Array.from({ length: b.echo }, (_, e) => {
        const examples = all.then((steps) => steps[e]);
        // A step drawn ahead and never trained (the time cap) must not fail the run when the source closes.
        examples.catch(() => {});
        const end = e === b.echo - 1;
        return { frames, n, examples, position: { rng: end ? after : before, echoOffset: end ? 0 : e + 1 } };
      }).slice(skip);
    };
    const timeSpan = o.timeSchedule && o.maxSeconds ? o.maxSeconds : 0;
    // Steps drawn ahead: one for a source that reads or renders inline, more where render threads work beside the
    // trainer (each step's videos are few and a long one is one thread's work, so one step ahead leaves threads idle);
    // with echo, as many groups ahead. The data RNG is drawn in step order either way: the same examples, the same
    // checkpoints' data positions.
    const depth = Math.max(1, trainData.prefetch ?? 1) * b.echo;
    const ahead: PendingStep[] = [];
    let drawnTo = state.step;
    // A checkpoint inside a group (a recipe whose echo has since shrunk below its offset starts a new group).
    let skip = dataPosition.echoOffset < b.echo ? dataPosition.echoOffset : 0;
    const refill = () => {
      while (ahead.length < depth && drawnTo < last) {
        const group = drawGroup(skip);
        skip = 0;
        ahead.push(...group);
        drawnTo += group.length;
      }
    };
    refill();
    let waitMs = 0;
    for (let step = state.step + 1; step <= last; step++) {
      const elapsed = (performance.now() - t0 - asideMs) / 1000;
      const lr = learningRate({ ...s, lr: recipe.optimizer.lr }, step, timeSpan ? elapsed / timeSpan : 0);
      const { frames, n, examples: drawn, position } = ahead.shift()!;
      const waitStart = performance.now();
      const examples = await drawn;
      waitMs += performance.now() - waitStart;
      refill();
      // The data position a checkpoint of this step records: after its own draws, before the next's.
      dataPosition = position;
      const teachers = teacher ? await teacherTargets(engine, teacher, examples, recipe) : null;
      const values: LossValue[] = [];
      const params = opt.params;
      const micro: MicroBatch[] = splitEven(
        examples.map((ex, i) => ({ ex, t: teachers?.[i] ?? null })),
        Math.min(b.accumulate, n),
      ).map((group) => ({
        tokens: group.reduce((a, g) => a + g.ex.answer.length, 0),
        run: () =>
          engine.valueAndGradAsync(async () => {
            using fwd = model.forward(b.checkpoint ? engine.checkpoint : undefined);
            const whole = b.checkpoint && !fwd.checkpointsParts;
            const exs = group.map((g) => g.ex);
            // The group's videos in one forward where the family batches them (a distillation run goes
            // example by example: the teacher's targets are per example).
            if (!teacher && batches(fwd, exs)) {
              const logits = whole
                ? engine.checkpoint(() => syncLogits(fwd.batchLogits(exs)))
                : await fwd.batchLogits(exs);
              return exampleObjective(engine, logits, padded(exs, 0).targets, null, values);
            }
            let total: Tensor | null = null;
            for (const { ex, t } of group) {
              const logits = whole
                ? engine.checkpoint(() => syncLogits(fwd.logits(ex)))
                : await fwd.logits(ex);
              const obj = exampleObjective(engine, logits, teacherForced(ex).targets, t, values);
              total = total ? ops.add(total, obj) : obj;
            }
            return total!;
          }, params),
      }));
      let r: Awaited<ReturnType<typeof optimizerStep>>;
      try {
        r = await optimizerStep(engine, opt, micro, lr, recipe.optimizer.clip);
      } finally {
        for (const t of teachers ?? []) {
          t.ids.dispose();
          t.values.dispose();
        }
      }
      const { ce, kl } = await readLosses(values);
      const loss = ce / Math.max(1, r.tokens);
      if (r.skipped) skipped++;
      lastLoss = loss;
      state.step = step;
      state.tokens += r.tokens;
      state.examples += n;
      state.losses.push([step, round(loss)]);
      const info: StepInfo = {
        step,
        steps: s.steps,
        loss,
        kl: teacher ? kl / Math.max(1, r.tokens) : null,
        lr,
        gradNorm: r.gradNorm,
        tokens: r.tokens,
        videos: n,
        frames,
        skipped: r.skipped,
        seconds: (performance.now() - t0 - asideMs) / 1000,
        dataWait: waitMs / 1000,
      };
      o.onStep?.(info);
      if (step % recipe.output.logEvery === 0 || step === 1 || step === s.steps)
        await appendFile(
          logPath,
          `${JSON.stringify({ ...info, loss: round(loss), seconds: round(info.seconds), dataWait: round(info.dataWait) })}\n`,
        );
      const aside = performance.now();
      const timeUp = o.maxSeconds !== undefined && info.seconds >= o.maxSeconds;
      if (evalSet && (step % recipe.output.evalEvery === 0 || step === s.steps || timeUp)) {
        lastEval = await evaluate(model, evalSet, step, recipe.output.maxNewTokens);
        state.evals.push([step, round(lastEval.accuracy)]);
        o.onEval?.(lastEval);
        await appendFile(logPath, `${JSON.stringify({ step, eval: lastEval })}\n`);
      }
      if (step % recipe.output.checkpointEvery === 0 || step === last || timeUp) await save();
      asideMs += performance.now() - aside;
      if (timeUp) {
        note(`time cap of ${o.maxSeconds} s reached at step ${step}`);
        break;
      }
    }
    const seconds = (performance.now() - t0 - asideMs) / 1000;
    const report: TrainReport = {
      recipe: recipe.name,
      device: backend.name,
      dtype,
      trainable: count(trainable),
      parameters: count(names),
      steps: state.step,
      startStep,
      seconds: round(seconds),
      stepsPerSecond: round((state.step - startStep) / Math.max(seconds, 1e-9)),
      dataWait: round(waitMs / 1000),
      finalLoss: lastLoss,
      skipped,
      eval: lastEval,
      checkpoint,
      log: logPath,
      curve: join(out, 'loss.png'),
    };
    await writeFile(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    opt[Symbol.dispose]();
    return report;
  } finally {
    await trainData.close();
    await evalData?.close();
    model[Symbol.dispose]();
    teacher?.[Symbol.dispose]();
  }
}

interface PendingStep {
  frames: number;
  n: number;
  examples: Promise<Example[]>;
  /** Where the data is once this step's videos are drawn. */
  position: DataPosition;
}

const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** The teacher's top-k on every answer row of each example (its forward without recording). */
async function teacherTargets(
  engine: GradEngine,
  teacher: TrainModel,
  examples: readonly Example[],
  recipe: Recipe,
): Promise<TeacherTargets[]> {
  const d = recipe.distill!;
  const out: TeacherTargets[] = [];
  for (const ex of examples) {
    const logits = engine.noGrad(() => {
      using fwd = teacher.forward();
      return syncLogits(fwd.logits(ex));
    });
    try {
      out.push(await topKTargets(logits, teacherForced(ex).targets, d.topK, d.weight));
    } finally {
      logits.dispose();
    }
  }
  return out;
}

/** Greedy answers to the held-out set; exact match with the answer (its <|im_end|> left out). */
export async function evaluate(
  model: TrainModel,
  set: readonly Example[],
  step: number,
  maxNew: number,
): Promise<EvalResult> {
  const answers = await model.answers(set, maxNew);
  const r: EvalResult = { step, correct: 0, total: 0, accuracy: 0, byGroup: {}, byFrames: {} };
  set.forEach((ex, i) => {
    const want = ex.answer.slice(0, -1);
    const ok = answers[i].length === want.length && answers[i].every((t, j) => t === want[j]) ? 1 : 0;
    r.correct += ok;
    r.total++;
    for (const [map, key] of [
      [r.byGroup, ex.group],
      [r.byFrames, String(ex.count)],
    ] as const) {
      const g = map[key] ?? [0, 0];
      map[key] = [g[0] + ok, g[1] + 1];
    }
  });
  r.accuracy = r.correct / Math.max(1, r.total);
  return r;
}
