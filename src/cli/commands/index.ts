import type { Command } from 'commander';
import * as convert from './convert.js';
import * as frames from './frames.js';
import * as needle from './needle.js';
import * as probe from './probe.js';

/** Every sub-command's registration, in the order `--help` lists them. */
export const commands: Array<(program: Command) => void> = [
  probe.register,
  frames.register,
  needle.register,
  convert.register,
];
