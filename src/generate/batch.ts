/**
 * Continuous batching of decode steps. Every generation of a model that can step many sessions at once
 * (`CausalLM.stepMany`) hands its next step to the model's `DecodeBatcher`; the batcher runs the steps of all
 * generations that are waiting as one batched forward (one token per sequence, each over its own cache), samples
 * every row on the device and reads the N tokens back in one transfer. Generations join after their prefill and
 * leave when they end, so the batch changes between steps and nobody waits for another's whole answer.
 *
 * A step runs as soon as every member is waiting; a member that is slow to come back (its client reads slowly)
 * is not waited for beyond one turn of the event loop.
 *
 * Chunked prefill: long work on the same device (a new video being encoded) runs in pieces and awaits
 * `decodeTurn()` between them, so the decoding generations get one batched step per piece instead of waiting
 * for the whole encode.
 */
import * as ops from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import type { CausalLM } from './types.js';

/** How one row is sampled (the `ops.sample` options of its generation) and its uniform draw. */
export interface RowSampling {
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  /** Ids seen so far (prompt + generated) when the penalty is on. */
  seen: readonly number[];
  uniform: number;
}

interface Pending {
  session: CausalLM<unknown>;
  token: number;
  sampling: RowSampling;
  resolve: (next: number) => void;
  reject: (e: unknown) => void;
}

/** Counters a server reports (serve/metrics.ts): one batcher's, or `decodeTotals` over all of them. */
export interface BatchStats {
  /** Batched steps run and the tokens they produced. */
  steps: number;
  tokens: number;
  /** Generations decoding now. */
  members: number;
}

/** Steps, tokens and decoding generations of every batcher of this process. */
export const decodeTotals: BatchStats = { steps: 0, tokens: 0, members: 0 };

/** Batchers with members now (what `decodeTurn` waits on). */
const active = new Set<DecodeBatcher>();

export class DecodeBatcher {
  #members = 0;
  #pending: Pending[] = [];
  #running = false;
  #scheduled = false;
  /** Callers of `nextStep` waiting for the step under way or the next one to end. */
  #turns: (() => void)[] = [];
  /** A pause was woken: the next step waits a turn of the event loop, so I/O runs between piece and step. */
  #yieldNext = false;
  readonly stats: BatchStats = { steps: 0, tokens: 0, members: 0 };

  /** A generation starts decoding (after its prefill). */
  join(): void {
    this.stats.members = ++this.#members;
    decodeTotals.members++;
    active.add(this);
  }

  /** A generation ended; the others no longer wait for it. */
  leave(): void {
    this.stats.members = --this.#members;
    decodeTotals.members--;
    if (!this.#members) {
      active.delete(this);
      this.#wakeTurns();
    }
    this.#schedule();
  }

  /**
   * Resolves once a batched step has run: the one under way, else the next. When no step is under way or
   * waiting a turn of the event loop later (the members are all busy elsewhere, or gone), it resolves then.
   */
  nextStep(): Promise<void> {
    return new Promise((resolve) => {
      this.#turns.push(resolve);
      setImmediate(() => {
        if (!this.#running && !this.#pending.length) this.#wakeTurns();
      });
    });
  }

  #wakeTurns(): void {
    if (this.#turns.length) this.#yieldNext = true;
    for (const wake of this.#turns.splice(0)) wake();
  }

  /** Feeds `token` to `session` with the others waiting, and resolves with the token sampled after it. */
  step(session: CausalLM<unknown>, token: number, sampling: RowSampling): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ session, token, sampling, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#running || !this.#pending.length) return;
    if (this.#pending.length >= this.#members && !this.#yieldNext) {
      this.#scheduled = false;
      queueMicrotask(() => void this.#flush());
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        if (this.#scheduled) void this.#flush();
      });
    }
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    this.#yieldNext = false;
    if (this.#running || !this.#pending.length) return;
    this.#running = true;
    const batch = this.#pending.splice(0);
    try {
      // A lone sequence takes the model's own one-token step: the batched kernels only pay off for several.
      const logits =
        batch.length === 1
          ? await batch[0].session.step(batch[0].token)
          : batch[0].session.stepMany!.call(
              batch[0].session,
              batch.map((p) => p.session),
              batch.map((p) => p.token),
            );
      const ids = await sampleRows(
        logits,
        batch.map((p) => p.sampling),
      );
      for (const s of [this.stats, decodeTotals]) {
        s.steps++;
        s.tokens += batch.length;
      }
      for (const [i, p] of batch.entries()) p.resolve(ids[i]);
    } catch (e) {
      for (const p of batch) p.reject(e);
    } finally {
      this.#running = false;
      this.#wakeTurns();
      this.#schedule();
    }
  }
}

/**
 * A pause for long work between two of its pieces (chunked prefill): resolves after the next batched step of
 * every batcher that has members, or on the next turn of the event loop when nothing is decoding.
 */
export function decodeTurn(): Promise<void> {
  if (!active.size) return new Promise((resolve) => setImmediate(resolve));
  return Promise.all([...active].map((b) => b.nextStep())).then(() => {});
}

const batchers = new WeakMap<object, DecodeBatcher>();

/** The batcher of the sessions sharing `key` (their model). */
export function batcherFor(key: object): DecodeBatcher {
  const b = batchers.get(key) ?? new DecodeBatcher();
  batchers.set(key, b);
  return b;
}

/**
 * One id per row of logits [rows, vocab] (consumed; cast to f32 when needed), each row sampled with its own settings: rows with the
 * same settings are sampled by one `ops.sample`; the ids come back in one read.
 */
export async function sampleRows(raw: Tensor, rows: readonly RowSampling[]): Promise<Int32Array> {
  const logits = raw.dtype === 'f32' ? raw : ops.cast(raw, 'f32');
  const groups = new Map<string, number[]>();
  rows.forEach((r, i) => {
    const key = `${r.temperature}|${r.topK}|${r.topP}|${r.repetitionPenalty}`;
    const g = groups.get(key);
    if (g) g.push(i);
    else groups.set(key, [i]);
  });
  const made: Tensor[] = [raw, logits];
  try {
    const parts: Tensor[] = [];
    const order: number[] = [];
    for (const idx of groups.values()) {
      const r = rows[idx[0]];
      const sub =
        idx.length === rows.length ? logits : ops.concat(idx.map((i) => take(logits.narrow(i, i + 1), made)));
      if (sub !== logits) made.push(sub);
      const penalty = r.repetitionPenalty !== 1;
      const previous = penalty
        ? previousIds(
            logits,
            idx.map((i) => rows[i].seen),
          )
        : null;
      if (previous) made.push(previous);
      const out = ops.sample(
        sub,
        Float32Array.from(idx, (i) => rows[i].uniform),
        {
          temperature: r.temperature,
          topK: r.topK,
          topP: r.topP,
          repetitionPenalty: r.repetitionPenalty,
          previous,
        },
      );
      made.push(out);
      parts.push(out);
      order.push(...idx);
    }
    const all = parts.length === 1 ? parts[0] : take(ops.concat(parts), made);
    const got = (await all.data()) as Int32Array;
    const ids = new Int32Array(rows.length);
    order.forEach((row, j) => {
      ids[row] = got[j];
    });
    return ids;
  } finally {
    for (const t of new Set(made)) t.dispose();
  }
}

const take = (t: Tensor, made: Tensor[]): Tensor => {
  made.push(t);
  return t;
};

/** [rows, longest] i32 of each row's seen ids, padded with −1. */
function previousIds(like: Tensor, seen: readonly (readonly number[])[]): Tensor {
  const n = Math.max(1, ...seen.map((s) => s.length));
  const ids = new Int32Array(seen.length * n).fill(-1);
  seen.forEach((s, r) => {
    ids.set(s, r * n);
  });
  return ops.tensor(like.backend, ids, [seen.length, n], 'i32');
}
