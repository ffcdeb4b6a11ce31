/** A run's results in lmms-eval's results-file shape, and the same as a Markdown table. */
import type { Scores } from './benchmark.js';

export interface ResultsConfig {
  model: string;
  limit?: number;
  shard?: string;
  /** Items asked (after --shard and --limit) and in the benchmark. */
  effective: number;
  original: number;
}

export function lmmsResults(task: string, scores: Scores, config: ResultsConfig) {
  const metrics = Object.fromEntries(
    Object.entries(scores.metrics).flatMap(([k, v]) => [
      [`${k},none`, round(v)],
      [`${k}_stderr,none`, 'N/A'],
    ]),
  );
  return {
    results: { [task]: { alias: task, ...metrics } },
    breakdown: { [task]: scores.breakdown },
    'n-samples': { [task]: { original: config.original, effective: config.effective } },
    higher_is_better: { [task]: Object.fromEntries(Object.keys(scores.metrics).map((k) => [k, true])) },
    config: {
      model: 'longshot',
      model_args: config.model,
      limit: config.limit ?? null,
      shard: config.shard ?? null,
    },
    date: new Date().toISOString(),
  };
}

const round = (v: number) => Math.round(v * 100) / 100;

export function markdownTable(task: string, scores: Scores, config: ResultsConfig): string {
  const lines = [
    `## ${task} — ${config.model} (${config.effective} of ${config.original} items)`,
    '',
    '| metric | score |',
    '| --- | ---: |',
    ...Object.entries(scores.metrics).map(([k, v]) => `| ${k} | ${v.toFixed(1)} |`),
  ];
  for (const [field, values] of Object.entries(scores.breakdown)) {
    lines.push('', `| ${field} | score | correct / total |`, '| --- | ---: | ---: |');
    for (const [value, t] of Object.entries(values).sort(([a], [b]) => a.localeCompare(b)))
      lines.push(`| ${value} | ${t.score.toFixed(1)} | ${t.correct} / ${t.total} |`);
  }
  return `${lines.join('\n')}\n`;
}
