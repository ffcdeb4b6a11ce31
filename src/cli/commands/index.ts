import type { Command } from 'commander';

/** Every sub-command's registration, in the order `--help` lists them. */
export const commands: Array<(program: Command) => void> = [];
