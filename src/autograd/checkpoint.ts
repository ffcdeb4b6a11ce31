/**
 * Activation checkpointing. The forward of fn runs under a probe that records nothing but notes the tensors
 * fn reads from outside (its inputs); the tape keeps only those (retained views, so the model code may dispose
 * them) and one node whose backward replays fn on a fresh tape, then backpropagates through the replay.
 */
import { type Recorder, setRecorder } from '../runtime/grad-hook.js';
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import { AutogradError, registerRule } from './rule.js';
import { Tape } from './tape.js';
import { noteWrite } from './versions.js';

interface CheckpointAttrs {
  fn: () => Tensor;
  externals: Tensor[];
}

class Probe implements Recorder {
  readonly made = new Set<Tensor>();
  readonly externals: Tensor[] = [];
  readonly #seen = new Set<Tensor>();
  constructor(readonly outer: Tape) {}

  #read(inputs: readonly (Tensor | null)[]): void {
    for (const t of inputs)
      if (t && !this.made.has(t) && !this.#seen.has(t)) {
        this.#seen.add(t);
        this.externals.push(t);
      }
  }
  record(_op: string, inputs: readonly (Tensor | null)[], outputs: readonly Tensor[]): void {
    this.#read(inputs);
    for (const t of outputs) this.made.add(t);
  }
  recordInPlace(op: string, dst: Tensor, inputs: readonly (Tensor | null)[], attrs: object): void {
    noteWrite(op, dst, inputs, attrs);
    if (this.outer.tracks(dst))
      throw new AutogradError(
        `checkpoint: fn writes (${op}) into a tensor that needs gradients made outside it`,
      );
    this.#read(inputs);
    this.made.add(dst);
  }
  revived(t: Tensor): boolean {
    return this.outer.revived(t);
  }
}

export function recordCheckpoint<T extends Tensor>(tape: Tape, fn: () => T): T {
  const probe = new Probe(tape);
  setRecorder(probe);
  let out: T;
  try {
    out = fn();
  } finally {
    setRecorder(tape);
  }
  // A tensor fn uploaded itself (ops.tensor records nothing, so the probe took it for an input) and disposed
  // before returning has no memory left to keep: the replay makes it again. Retaining it would make a view of
  // memory the backend already reuses (on a GPU's caching allocator, freed twice).
  const externals = probe.externals.filter((t) => t.buffer.refs > 0);
  const attrs: CheckpointAttrs = { fn, externals };
  tape.record('checkpoint', externals, [out], attrs);
  return out;
}

registerRule<CheckpointAttrs>('checkpoint', {
  save: () => ({ inputs: 'all' }),
  backward({ attrs, needs }, [g]) {
    const { fn, externals } = attrs;
    const replay = new Tape(new Set(externals));
    externals.forEach((t, i) => {
      if (needs[i]) replay.track(t);
    });
    const prev = setRecorder(replay);
    let out: Tensor;
    try {
      out = fn();
    } catch (e) {
      replay.dispose();
      throw e;
    } finally {
      setRecorder(prev);
    }
    return replay.backward([out], [ops.clone(g!)], externals);
  },
});
