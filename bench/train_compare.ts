/**
 * The table of bench/gpu/train.sh: longshot train and tools/reference/train_needle.py on the same data, steps
 * and hyper-parameters. Reads <dir>/longshot/report.json + log.jsonl and <dir>/pytorch/report.json +
 * loss.jsonl; writes <dir>/summary.md, <dir>/summary.json and <dir>/pytorch-loss.png (the longshot curve is
 * <dir>/longshot/loss.png; both drawn by src/train/curve.ts).
 *
 *   node --import tsx bench/train_compare.ts <dir> [model]      # model: train_needle.py's --model (vamba)
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lossCurvePng } from '../src/train/curve.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: train_compare.ts <dir> [model]');
const model = process.argv[3] ?? 'vamba';
const json = (p: string) => (existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : null);
const lines = (p: string) =>
  existsSync(p)
    ? readFileSync(p, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

const ours = json(join(dir, 'longshot', 'report.json'));
const oursSteps = lines(join(dir, 'longshot', 'log.jsonl')).filter((l) => 'loss' in l);
const pyReport = json(join(dir, 'pytorch', 'report.json'))?.[model];
const pySteps = lines(join(dir, 'pytorch', 'loss.jsonl'));
const pyEval = pyReport
  ? (Object.values(pyReport.eval ?? {})[0] as
      | { correct: number; total: number; accuracy: number }
      | undefined)
  : undefined;
if (pySteps.length)
  writeFileSync(
    join(dir, 'pytorch-loss.png'),
    lossCurvePng(
      pySteps.map((l) => [l.step, l.loss]),
      pyEval ? [[pySteps[pySteps.length - 1].step, pyEval.accuracy]] : [],
    ),
  );
// Final loss: the mean over the last 20 logged losses of each (both log every step here).
const row = (
  name: string,
  r: { steps: number; seconds: number; finalLoss: number | null; correct?: number; total?: number },
) => ({
  trainer: name,
  steps: r.steps,
  seconds: r.seconds,
  stepsPerSecond: r.seconds ? r.steps / r.seconds : null,
  finalLoss: r.finalLoss,
  heldOut: r.total ? { correct: r.correct, total: r.total, accuracy: (r.correct ?? 0) / r.total } : null,
});
const rows = [];
if (ours)
  rows.push(
    row('longshot train', {
      steps: ours.steps - ours.startStep,
      seconds: ours.seconds,
      finalLoss: mean(oursSteps.slice(-20).map((l) => l.loss)),
      correct: ours.eval?.correct,
      total: ours.eval?.total,
    }),
  );
if (pyReport)
  rows.push(
    row('train_needle.py (PyTorch)', {
      steps: pyReport.steps,
      seconds: pySteps.length ? pySteps[pySteps.length - 1].seconds : pyReport.seconds,
      finalLoss: mean(pySteps.slice(-20).map((l) => l.loss)),
      correct: pyEval?.correct,
      total: pyEval?.total,
    }),
  );
const fmt = (x: number | null | undefined, d = 3) => (x === null || x === undefined ? '–' : x.toFixed(d));
const table = [
  '| trainer | steps | train s | steps/s | final loss (mean of last 20) | held-out accuracy |',
  '|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.trainer} | ${r.steps} | ${fmt(r.seconds, 1)} | ${fmt(r.stepsPerSecond, 2)} | ${fmt(r.finalLoss, 4)} | ${r.heldOut ? `${(100 * r.heldOut.accuracy).toFixed(1)}% (${r.heldOut.correct}/${r.heldOut.total})` : '–'} |`,
  ),
];
if (rows.length === 2 && rows[0].stepsPerSecond && rows[1].stepsPerSecond)
  table.push(
    '',
    `longshot / PyTorch steps/s: ${(rows[0].stepsPerSecond / rows[1].stepsPerSecond).toFixed(2)}×`,
  );
writeFileSync(join(dir, 'summary.md'), `${table.join('\n')}\n`);
writeFileSync(
  join(dir, 'summary.json'),
  `${JSON.stringify({ rows, longshot: ours, pytorch: pyReport ?? null }, null, 2)}\n`,
);
process.stdout.write(`${table.join('\n')}\n`);
