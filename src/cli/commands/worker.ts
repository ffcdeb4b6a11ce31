/** `longshot worker --redis URL`: answers batch jobs from a Redis queue until stopped (SIGTERM or SIGINT). */
import { type Command, InvalidArgumentError } from 'commander';
import type { DeviceName } from '../../runtime/backend.js';
import { DEFAULT_QUEUE } from '../../worker/defaults.js';
import { MODEL_HELP, positiveInt } from '../options.js';

/** cpu, cuda, auto, or cuda:N (one worker per GPU: N is made the only visible device). */
function device(raw: string): DeviceName | 'auto' {
  const m = raw.match(/^cuda:(\d+)$/);
  if (m) {
    process.env.CUDA_VISIBLE_DEVICES = m[1];
    return 'cuda';
  }
  if (raw === 'cpu' || raw === 'cuda' || raw === 'auto') return raw;
  throw new InvalidArgumentError(`--device must be cpu, cuda, cuda:N or auto, got '${raw}'`);
}

export function register(program: Command): void {
  program
    .command('worker')
    .description('answer batch jobs from a Redis queue (one worker per GPU, on any number of machines)')
    .requiredOption('--redis <url>', 'Redis server, redis://host:port[/db]')
    .option('--queue <name>', 'queue to serve (one model per queue)', DEFAULT_QUEUE)
    .option('-m, --model <dir|name|org/name>', MODEL_HELP)
    .option('--device <device>', 'cpu, cuda, cuda:N or auto', device, 'auto')
    .option('--id <name>', 'worker name, unique in the queue (default: host-pid)')
    .option(
      '--lock-duration <ms>',
      'a job whose worker shows no sign of life this long is retried elsewhere',
      positiveInt('--lock-duration'),
      30_000,
    )
    .option('--cached-videos <n>', 'encoded videos kept in memory', positiveInt('--cached-videos'), 4)
    .option(
      '--encodings-dir <dir>',
      'shared folder of encoded videos: load one saved there instead of decoding, save each new one',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ longshot worker --redis redis://queue-host:6379 --model TIGER-Lab/Vamba-Qwen2-VL-7B --device cuda:0
  $ for i in 0 1 2 3; do longshot worker --redis redis://queue-host:6379 --device cuda:$i & done
  $ longshot worker --redis redis://queue-host:6379 --encodings-dir /shared/longshot-encodings

SIGTERM or SIGINT finishes the job in hand, then exits; a second one exits at once (the job is retried elsewhere).
See docs/distributed.md.`,
    )
    .action(async (o) => {
      const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
      // Loaded here: BullMQ and ioredis are needed only when a worker runs.
      const { EncodingsDir, startWorker } = await import('../../worker/index.js');
      const worker = await startWorker({
        redis: o.redis,
        queue: o.queue,
        model: o.model,
        device: o.device,
        id: o.id,
        lockDurationMs: o.lockDuration,
        cachedVideos: o.cachedVideos,
        handles: o.encodingsDir === undefined ? undefined : await EncodingsDir.open(o.encodingsDir, log),
        log,
      });
      await new Promise<void>((resolve, reject) => {
        let stopping = false;
        const stop = (signal: string) => {
          log(stopping ? `${signal}: stopping now` : `${signal}: finishing the job in hand`);
          (stopping ? worker.kill() : worker.close()).then(resolve, reject);
          stopping = true;
        };
        process.on('SIGTERM', stop).on('SIGINT', stop);
      });
    });
}
