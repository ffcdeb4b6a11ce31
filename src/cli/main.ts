#!/usr/bin/env node
/**
 * The `longshot` command. Each sub-command lives in its own module under ./commands and exports
 * `register(program)`. Errors a user can act on (LongshotError) print one clear line and exit with the
 * code of their kind: 2 usage, 3 input, 4 model, 5 out of memory; anything else is a bug (exit 1).
 */
import { Command, CommanderError } from 'commander';
import { EXIT_CODES, LongshotError } from '../errors.js';
import { setDefaultTools } from '../media/ffmpeg.js';
import { commands } from './commands/index.js';

export function buildProgram(): Command {
  const program = new Command('longshot')
    .description(
      'Ask questions about long videos with hybrid Mamba/attention video language models (Vamba, Qwen2-VL).',
    )
    .version('0.1.0')
    .option('--ffmpeg <path>', 'the ffmpeg to decode with (default: LONGSHOT_FFMPEG, else the shipped one)')
    .option(
      '--ffprobe <path>',
      'the ffprobe to read files with (default: LONGSHOT_FFPROBE, else the shipped one)',
    )
    .hook('preAction', (root) => {
      const { ffmpeg, ffprobe } = root.opts<{ ffmpeg?: string; ffprobe?: string }>();
      setDefaultTools({ ffmpegPath: ffmpeg, ffprobePath: ffprobe });
    })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return 0;
      return EXIT_CODES.usage;
    }
    if (e instanceof LongshotError) {
      process.stderr.write(`longshot: ${e.message}\n`);
      return EXIT_CODES[e.kind];
    }
    process.stderr.write(
      `longshot: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    return 1;
  }
}
