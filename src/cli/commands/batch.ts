/** `longshot batch submit|status|results <jobs.jsonl>`: batch video QA through the workers' Redis queue. */
import { renameSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { DEFAULT_ATTEMPTS, DEFAULT_QUEUE } from '../../worker/defaults.js';

/** The queue's client, loaded when a batch command runs (BullMQ and ioredis are not needed before). */
const queue = () => import('../../worker/index.js');

import { positiveInt } from '../options.js';

function withQueue(cmd: Command): Command {
  return cmd
    .argument('<jobs.jsonl>', 'one job per line: {"id", "video", "question" | "questions", options…}')
    .requiredOption('--redis <url>', 'Redis server, redis://host:port[/db]')
    .option('--queue <name>', 'queue the workers serve', DEFAULT_QUEUE);
}

export function register(program: Command): void {
  const batch = program
    .command('batch')
    .description(
      'submit a file of video questions to the workers and collect the answers (see docs/distributed.md)',
    );
  withQueue(batch.command('submit').description('queue the jobs not submitted before (same id, same job)'))
    .option(
      '--attempts <n>',
      'tries per job before its error is its result',
      positiveInt('--attempts'),
      DEFAULT_ATTEMPTS,
    )
    .addHelpText(
      'after',
      `
Example jobs.jsonl line:
  {"id": "talk-1", "video": "/shared/talk.mp4", "questions": ["Who speaks first?", "What is on the slide?"], "frames": 256}
Relative video paths are taken from the jobs file's folder; every worker must be able to read them.`,
    )
    .action(async (file: string, o) => {
      const { submitJobs, readJobs } = await queue();
      const r = await submitJobs(readJobs(file), { redis: o.redis, queue: o.queue, attempts: o.attempts });
      process.stdout.write(`${JSON.stringify(r)}\n`);
    });
  withQueue(batch.command('status').description('how many of the jobs are answered, failed, pending')).action(
    async (file: string, o) => {
      const { batchStatus, readJobs } = await queue();
      process.stdout.write(`${JSON.stringify(await batchStatus(readJobs(file), o))}\n`);
    },
  );
  withQueue(batch.command('results').description('the results so far as JSONL, in the jobs file’s order'))
    .option('--wait', 'wait until every job has a result')
    .option('--out <file>', 'write to this file (replaced whole) instead of stdout')
    .action(async (file: string, o) => {
      const { jobResults, readJobs } = await queue();
      const results = await jobResults(readJobs(file), { redis: o.redis, queue: o.queue, wait: o.wait });
      const text = results
        .filter(Boolean)
        .map((r) => `${JSON.stringify(r)}\n`)
        .join('');
      if (!o.out) return void process.stdout.write(text);
      writeFileSync(`${o.out}.partial`, text);
      renameSync(`${o.out}.partial`, o.out);
    });
}
