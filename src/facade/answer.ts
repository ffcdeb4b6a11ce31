/**
 * A streamed answer: iterate it for text pieces as they are generated, or await `text()` / `result()`.
 * The generation runs once: iterating and awaiting the result share it, and a piece consumed by the
 * iterator is still part of the final text.
 */
import type { AskResult } from './types.js';

/**
 * What a model's generation loop produces: text pieces, then its summary as the return value; with
 * `relevance` asked for, a video model adds the answer's attention mass per temporal group of video tokens.
 */
export type Generation = AsyncGenerator<
  string,
  Omit<AskResult, 'text'> & { videoAttention?: readonly number[] }
>;

export class Answer implements AsyncIterable<string> {
  private readonly pieces: string[] = [];
  private iterated = false;
  private readonly done: Promise<AskResult>;
  private resolve!: (r: AskResult) => void;
  private reject!: (e: unknown) => void;

  constructor(private readonly generation: Generation) {
    this.done = new Promise<AskResult>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.done.catch(() => {}); // unhandled only if nobody asks: the iterator's caller sees errors itself
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<string> {
    if (this.iterated) throw new Error('an Answer can be iterated only once');
    this.iterated = true;
    try {
      for (;;) {
        const step = await this.generation.next();
        if (step.done) {
          const { videoAttention: _, ...summary } = step.value;
          this.resolve({ text: this.pieces.join(''), ...summary });
          return;
        }
        this.pieces.push(step.value);
        yield step.value;
      }
    } catch (e) {
      this.reject(e);
      throw e;
    } finally {
      // Stopped early (break, or an error downstream): end the generation so it frees what it holds.
      await this.generation.return(undefined as never).catch(() => {});
      this.reject(new Error('the answer was not read to its end')); // no-op once settled
    }
  }

  /** The whole answer with its token counts (runs the generation to the end if nobody iterates it). */
  result(): Promise<AskResult> {
    if (!this.iterated)
      void (async () => {
        for await (const _ of this) {
          // the iterator collects the pieces
        }
      })().catch(() => {});
    return this.done;
  }

  async text(): Promise<string> {
    return (await this.result()).text;
  }
}
