/**
 * The frames of a live video in whole temporal groups: they arrive in any number, the vision tower takes them
 * `temporal_patch_size` at a time, so a frame waits for the rest of its group. Shared by Qwen2-VL and Vamba.
 */
import { InputError } from '../../errors.js';
import type { RgbImage } from './processor.js';

export class FrameGroups {
  #pending: RgbImage[] = [];
  #size: string | null = null;

  constructor(
    /** Frames per temporal group. */
    readonly groupSize: number,
    /** Groups per batch handed to the vision tower. */
    readonly groupsPerBatch: number,
  ) {}

  /** Frames waiting for the rest of their group. */
  get pending(): number {
    return this.#pending.length;
  }

  /** Takes frames in; returns the batches of whole groups now complete, oldest first. */
  take(frames: readonly RgbImage[]): RgbImage[][] {
    for (const f of frames) {
      const size = `${f.width}x${f.height}`;
      this.#size ??= size;
      if (size !== this.#size)
        throw new InputError(
          `a live video's frames keep one size: this one is ${size}, the first was ${this.#size}`,
        );
    }
    const all = [...this.#pending, ...frames];
    const whole = all.length - (all.length % this.groupSize);
    this.#pending = all.slice(whole);
    const per = this.groupSize * this.groupsPerBatch;
    const batches: RgbImage[][] = [];
    for (let i = 0; i < whole; i += per) batches.push(all.slice(i, Math.min(whole, i + per)));
    return batches;
  }
}

/** Lets queued work (a question's next token, an HTTP request) run between two pieces of a long append. */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
