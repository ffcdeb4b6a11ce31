import type { Command } from 'commander';
import * as ask from './ask.js';
import * as batch from './batch.js';
import * as convert from './convert.js';
import * as download from './download.js';
import * as frames from './frames.js';
import * as info from './info.js';
import * as needle from './needle.js';
import * as probe from './probe.js';
import * as serve from './serve.js';
import * as worker from './worker.js';

/** Every sub-command's registration, in the order `--help` lists them. */
export const commands: Array<(program: Command) => void> = [
  ask.register,
  serve.register,
  download.register,
  info.register,
  probe.register,
  frames.register,
  convert.register,
  needle.register,
  worker.register,
  batch.register,
];
