#!/usr/bin/env node
/**
 * The `longshot` command. Each sub-command lives in its own module under ./commands and exports
 * `register(program)`. Errors a user can act on (LongshotError) print one clear line and exit with the
 * code of their kind: 2 usage, 3 input, 4 model, 5 out of memory; anything else is a bug (exit 1), printed
 * as one line too, with its stack when LONGSHOT_DEBUG is set. Messages are capped (capMessage).
 */
import { Command, CommanderError } from 'commander';
import { capMessage, EXIT_CODES, LongshotError } from '../errors.js';
import { setDefaultTools } from '../media/ffmpeg.js';
import { modelFamilies } from '../models/registry.js';
import { commands } from './commands/index.js';

function buildProgram(): Command {
  const program = new Command('longshot')
    .description(
      `Ask questions about long videos with hybrid Mamba/attention video language models (${modelFamilies()
        .map((f) => f.name)
        .join(', ')}).`,
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
  for (const family of modelFamilies()) for (const register of family.commands ?? []) register(program);
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
      process.stderr.write(`longshot: ${capMessage(e.message)}\n`);
      return EXIT_CODES[e.kind];
    }
    const debug = Boolean(process.env.LONGSHOT_DEBUG);
    const what = e instanceof Error ? (debug && e.stack) || e.message : String(e);
    process.stderr.write(
      `longshot: internal error (a bug; please report it): ${debug ? what : capMessage(what)}` +
        `${debug ? '' : ' (LONGSHOT_DEBUG=1 shows the stack)'}\n`,
    );
    return 1;
  }
}
