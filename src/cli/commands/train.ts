/** `longshot train <recipe>`: trains a model from a recipe file (docs/training.md). */
import '../../backends/cpu/index.js';
import '../../backends/cuda/index.js';
import { isAbsolute, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { getBackend, resolveDevice } from '../../runtime/device.js';
import { autogradEngine } from '../../train/engine.js';
import { openRecipe } from '../../train/recipe.js';
import { type StepInfo, train } from '../../train/trainer.js';
import { nonNegativeInt, positive, positiveInt, printJson } from '../options.js';
import { progressEnabled } from '../progress.js';

interface TrainCliOptions {
  device: 'auto' | 'cpu' | 'cuda';
  out?: string;
  steps?: number;
  lr?: number;
  from?: string;
  resume?: boolean;
  maxSeconds?: number;
  timeSchedule?: boolean;
  seed?: number;
  initCrossAttentionFromSelfAttention?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('train')
    .description('train a model (or its new layers) from a recipe: checkpoints, a JSONL log and a loss curve')
    .argument(
      '<recipe>',
      'a recipe file (JSON), or the name of a shipped one (needle-vamba, vamba-stage1, …; outputs to runs/<name>)',
    )
    .option('--device <device>', 'auto, cpu or cuda', 'auto')
    .option('--out <dir>', "output directory (default: the recipe's output.dir)")
    .option('--steps <n>', "optimizer steps (default: the recipe's schedule.steps)", positiveInt('--steps'))
    .option(
      '--lr <rate>',
      "peak learning rate (default: the recipe's optimizer.lr), e.g. lower for a short run going on from trained weights",
      positive('--lr'),
    )
    .option('--from <dir>', "start from this checkpoint (default: the recipe's model.from)")
    .option('--resume', 'continue from the last checkpoint in the output directory')
    .option(
      '--max-seconds <s>',
      'stop (evaluate and save) after the step during which this many seconds of training passed',
      positiveInt('--max-seconds'),
    )
    .option(
      '--seed <n>',
      "the run's seed: data order and, from scratch, the initial weights (default: the recipe's seed)",
      nonNegativeInt('--seed'),
    )
    .option(
      '--time-schedule',
      "with --max-seconds: the learning rate's cosine decay runs over those seconds (or the steps, if they end first)",
    )
    .option(
      '--init-cross-attention-from-self-attention',
      'start a Vamba from the Qwen2-VL checkpoint in model.from, each cross-attention copied from its layer’s self-attention (Vamba stage 1)',
    )
    .option('--json', 'print the final report as JSON (no progress bar)')
    .addHelpText(
      'after',
      `
Writes into the output directory: checkpoint-<step>/ (a model directory every other command loads, plus
trainer/ with the optimizer state), last-checkpoint.json, log.jsonl (one line per logged step and per
evaluation), loss.png and report.json. docs/training.md describes the recipe fields.

Examples:
  $ longshot train recipes/needle-vamba.json --device cuda
  $ longshot train needle-vamba --steps 50          # a shipped recipe by name, from anywhere
  $ longshot train recipes/needle-vamba.json --steps 200 --out runs/quick
  $ longshot train recipes/needle-vamba.json --resume
  $ longshot train recipes/vamba-stage1.json --from ~/models/Qwen2-VL-7B-Instruct --init-cross-attention-from-self-attention`,
    )
    .action(async (path: string, o: TrainCliOptions) => {
      let recipe = await openRecipe(path);
      const abs = (p: string) => (isAbsolute(p) ? p : resolve(p));
      if (o.out) recipe = { ...recipe, output: { ...recipe.output, dir: abs(o.out) } };
      if (o.steps) recipe = { ...recipe, schedule: { ...recipe.schedule, steps: o.steps } };
      if (o.seed !== undefined) recipe = { ...recipe, seed: o.seed };
      if (o.lr) recipe = { ...recipe, optimizer: { ...recipe.optimizer, lr: o.lr } };
      if (o.from || o.initCrossAttentionFromSelfAttention)
        recipe = {
          ...recipe,
          model: {
            ...recipe.model,
            from: o.from ? abs(o.from) : recipe.model.from,
            config: o.from ? null : recipe.model.config,
            // A checkpoint brings its own tower and LLM.
            initFromQwen2VL: o.from ? '' : recipe.model.initFromQwen2VL,
            initCrossAttentionFromSelfAttention:
              o.initCrossAttentionFromSelfAttention ?? recipe.model.initCrossAttentionFromSelfAttention,
          },
        };
      if (o.timeSchedule && !o.maxSeconds)
        throw new UsageError('--time-schedule needs --max-seconds (the time the decay runs over)');
      if (o.timeSchedule && o.resume)
        throw new UsageError(
          '--time-schedule cannot resume a run (its clock starts again); start a new run with --from the checkpoint',
        );
      const backend = await getBackend(resolveDevice(o.device));
      const quiet = o.json;
      const bar = progressEnabled(o.json)
        ? new cliProgress.SingleBar(
            {
              stream: process.stderr,
              format:
                'train [{bar}] {value}/{total} steps | loss {loss} | lr {lr} | {rate} steps/s | {eta_formatted} left',
              hideCursor: true,
              etaBuffer: 50,
            },
            cliProgress.Presets.shades_classic,
          )
        : null;
      let started = false;
      let first = 0;
      const onStep = (s: StepInfo) => {
        if (!bar) return;
        if (!started) {
          bar.start(s.steps, s.step - 1, { loss: '-', lr: '-', rate: '-' });
          first = s.step - 1;
          started = true;
        }
        bar.update(s.step, {
          loss: s.loss.toFixed(4),
          lr: s.lr.toExponential(2),
          rate: ((s.step - first) / Math.max(s.seconds, 1e-9)).toFixed(2),
        });
      };
      const note = (line: string) => {
        if (!quiet) process.stderr.write(`${line}\n`);
      };
      const report = await train({
        recipe,
        backend,
        engine: autogradEngine,
        resume: o.resume,
        maxSeconds: o.maxSeconds,
        timeSchedule: o.timeSchedule,
        onStep,
        onEval: (e) => {
          if (!bar)
            note(
              `step ${e.step}: held-out accuracy ${(100 * e.accuracy).toFixed(1)}% (${e.correct}/${e.total})`,
            );
        },
        note,
      });
      bar?.stop();
      if (o.json) return printJson(report);
      const acc = report.eval
        ? `, held-out accuracy ${(100 * report.eval.accuracy).toFixed(1)}% (${report.eval.correct}/${report.eval.total})`
        : '';
      process.stdout.write(
        `${report.recipe}: ${report.steps} steps in ${report.seconds.toFixed(1)} s (${report.stepsPerSecond.toFixed(2)} steps/s), final loss ${report.finalLoss?.toFixed(4) ?? '-'}${acc}\ncheckpoint: ${report.checkpoint}\nlog: ${report.log}\ncurve: ${report.curve}\n`,
      );
    });
}
