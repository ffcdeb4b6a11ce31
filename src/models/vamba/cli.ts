/** `longshot convert <qwen2vl-dir> <out-dir>`: a Vamba checkpoint (official layout) from a Qwen2-VL one. */
import { type Command, InvalidArgumentError } from 'commander';

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer ≥ 0');
  return n;
}

function gigabytes(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError('expected a positive number of GB');
  return n;
}

/** Vamba's own sub-command (ModelFamily.commands). */
export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description(
      'build a Vamba checkpoint from a Qwen2-VL one: cross-attention copied from each self-attention, Mamba-2 blocks initialised as mamba_ssm, α = 0.5',
    )
    .argument('<qwen2vl-dir>', 'Qwen2-VL checkpoint directory (config.json + safetensors)')
    .argument('<out-dir>', 'where to write the Vamba checkpoint (created if missing)')
    .option('--seed <n>', 'seed of the Mamba-2 initialisation', nonNegativeInt, 0)
    .option('--shard-size <GB>', 'largest safetensors shard', gigabytes, 5)
    .option('--json', 'print the result as JSON')
    .action(async (src: string, out: string, o: { seed: number; shardSize: number; json?: boolean }) => {
      const { convertQwen2VLToVamba } = await import('./convert.js'); // model code only when it runs
      const tty = process.stderr.isTTY;
      const r = await convertQwen2VLToVamba(src, out, {
        seed: o.seed,
        shardBytes: Math.round(o.shardSize * 1e9),
        onProgress: (done, total) => {
          if (tty) process.stderr.write(`\rwriting tensors ${done}/${total}${done === total ? '\n' : ''}`);
        },
      });
      process.stdout.write(
        o.json
          ? `${JSON.stringify({ out, ...r }, null, 2)}\n`
          : `wrote ${out}: ${r.tensors} tensors, ${r.parameters.toLocaleString('en-US')} parameters, ${(r.bytes / 1e9).toFixed(2)} GB in ${r.shards.length} shard(s)\n`,
      );
    });
}
