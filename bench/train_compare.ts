/**
 * The table of bench/gpu/train.sh: longshot train and tools/reference/train_needle.py on the same data, steps
 * and hyper-parameters. Reads <dir>/longshot/report.json + log.jsonl and <dir>/pytorch/report.json +
 * loss.jsonl (a run paused and resumed over several calls: each call's report-<n>.json, steps and seconds
 * summed), and <dir>/eval-{longshot,pytorch}.json when both final models answered the same sets through
 * `longshot needle eval`; writes <dir>/summary.md, <dir>/summary.json and <dir>/pytorch-loss.png (the
 * longshot curve is <dir>/longshot/loss.png; both drawn by src/train/curve.ts).
 *
 *   node --import tsx bench/train_compare.ts <dir> [model]      # model: train_needle.py's --model (vamba)
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/** Each call's report of a run paused and resumed (report-<n>.json), or the one report.json of a run in one go. */
const reports = (who: string) => {
  const d = join(dir, who);
  const calls = existsSync(d) ? readdirSync(d).filter((f) => /^report-\d+\.json$/.test(f)) : [];
  return calls.length ? calls.map((f) => json(join(d, f))) : [json(join(d, 'report.json'))].filter(Boolean);
};
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const ours = json(join(dir, 'longshot', 'report.json'));
const oursCalls = reports('longshot');
const oursSteps = lines(join(dir, 'longshot', 'log.jsonl')).filter((l) => 'loss' in l);
const pyReport = json(join(dir, 'pytorch', 'report.json'))?.[model];
const pyCalls = reports('pytorch').map((r) => r[model]);
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
// Both final models through one evaluator (`longshot needle eval --json`: a line per set).
const sameEval = (who: string) =>
  lines(join(dir, `eval-${who}.json`)).map((r) => ({
    data: r.data as string,
    correct: r.correct as number,
    total: r.total as number,
  }));
// Final loss: the mean over the last 20 logged losses of each (both log every step here).
const row = (
  name: string,
  who: string,
  r: { steps: number; seconds: number; finalLoss: number | null; correct?: number; total?: number },
) => ({
  trainer: name,
  steps: r.steps,
  seconds: r.seconds,
  stepsPerSecond: r.seconds ? r.steps / r.seconds : null,
  finalLoss: r.finalLoss,
  heldOut: r.total ? { correct: r.correct, total: r.total, accuracy: (r.correct ?? 0) / r.total } : null,
  sameEvaluator: sameEval(who),
});
const rows = [];
if (ours)
  rows.push(
    row('longshot train', 'longshot', {
      steps: sum(oursCalls.map((r) => r.steps - r.startStep)),
      seconds: sum(oursCalls.map((r) => r.seconds)),
      finalLoss: mean(oursSteps.slice(-20).map((l) => l.loss)),
      correct: ours.eval?.correct,
      total: ours.eval?.total,
    }),
  );
if (pyReport)
  rows.push(
    row('train_needle.py (PyTorch)', 'pytorch', {
      steps: sum(pyCalls.map((r) => r.steps - (r.first ?? 1) + 1)),
      seconds:
        pyCalls.length > 1 || !pySteps.length
          ? sum(pyCalls.map((r) => r.seconds))
          : pySteps[pySteps.length - 1].seconds,
      finalLoss: mean(pySteps.slice(-20).map((l) => l.loss)),
      correct: pyEval?.correct,
      total: pyEval?.total,
    }),
  );
const fmt = (x: number | null | undefined, d = 3) => (x === null || x === undefined ? '–' : x.toFixed(d));
const pct = (t: { correct?: number; total?: number } | null) =>
  t?.total ? `${((100 * (t.correct ?? 0)) / t.total).toFixed(1)}% (${t.correct}/${t.total})` : '–';
const table = [
  "| trainer | steps | train s | steps/s | final loss (mean of last 20) | held-out accuracy (trainer's own) | `longshot needle eval` (same sets) |",
  '|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.trainer} | ${r.steps} | ${fmt(r.seconds, 1)} | ${fmt(r.stepsPerSecond, 2)} | ${fmt(r.finalLoss, 4)} | ${pct(r.heldOut)} | ${r.sameEvaluator.map(pct).join(' / ') || '–'} |`,
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
