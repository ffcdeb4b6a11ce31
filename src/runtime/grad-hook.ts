/**
 * The runtime's side of autograd (src/autograd): while a recorder is active, every differentiable op reports
 * what it did so the tape can replay it backwards. The recorder lives here, not in src/autograd, so the op
 * front-end needs no import of the engine (no cycle). When nothing records, an op pays one null check.
 */
import type { Tensor } from './tensor.js';

export interface Recorder {
  /** An op ran: `inputs` (null where an optional input was absent) produced `outputs`. */
  record(op: string, inputs: readonly (Tensor | null)[], outputs: readonly Tensor[], attrs: object): void;
  /** `dst` was overwritten in place by `op` (its inputs are listed as for `record`). */
  recordInPlace(op: string, dst: Tensor, inputs: readonly (Tensor | null)[], attrs: object): void;
  /** Whether a disposed tensor may still be read (activation checkpointing replays a saved input). */
  revived(t: Tensor): boolean;
}

/** The active recorder, or null (not recording). A live binding: read it as `active`. */
export let active: Recorder | null = null;

/** Installs a recorder (null stops recording) and returns the previous one, to restore afterwards. */
export function setRecorder(r: Recorder | null): Recorder | null {
  const prev = active;
  active = r;
  return prev;
}
