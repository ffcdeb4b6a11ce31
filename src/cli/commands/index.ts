import type { Command } from 'commander';
import { register as ask } from './ask.js';
import { register as download } from './download.js';
import { register as info } from './info.js';
import { register as serve } from './serve.js';

/** Every sub-command's registration, in the order `--help` lists them. */
export const commands: Array<(program: Command) => void> = [ask, serve, download, info];
