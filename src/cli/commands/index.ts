import type { Command } from 'commander';
import * as ask from './ask.js';
import * as batch from './batch.js';
import * as chat from './chat.js';
import * as download from './download.js';
import * as evaluate from './eval.js';
import * as frames from './frames.js';
import * as info from './info.js';
import * as needle from './needle.js';
import * as probe from './probe.js';
import * as serve from './serve.js';
import * as train from './train.js';
import * as watch from './watch.js';
import * as worker from './worker.js';

/** Every built-in sub-command's registration, in the order `--help` lists them (families add theirs after). */
export const commands: Array<(program: Command) => void> = [
  ask.register,
  chat.register,
  serve.register,
  watch.register,
  download.register,
  info.register,
  probe.register,
  frames.register,
  needle.register,
  evaluate.register,
  train.register,
  worker.register,
  batch.register,
];
