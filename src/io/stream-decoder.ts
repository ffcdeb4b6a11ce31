/**
 * Incremental detokenisation for streaming. Byte-level BPE tokens can end in the middle of a UTF-8
 * character (an emoji or CJK character may span 2–4 tokens), and decoding such a prefix yields U+FFFD. So,
 * as text-generation-inference does, each step decodes a small window [prefix, end) and emits only the text
 * past what the window's prefix already produced, holding back while the result ends in U+FFFD. Decoding
 * with a little left context also keeps decoders that strip a leading space (SentencePiece) correct. The
 * pieces concatenate to `decode(allIds)`, and each step costs a few tokens, not the whole sequence.
 */
export interface Decodes {
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
}

export interface StreamDecoderOptions {
  skipSpecialTokens?: boolean;
}

const REPLACEMENT = '\uFFFD';

export class StreamDecoder {
  private readonly ids: number[] = [];
  /** Start of the context window, and end of the tokens whose text has been emitted. */
  private prefix = 0;
  private read = 0;

  constructor(
    private readonly tokenizer: Decodes,
    private readonly opts: StreamDecoderOptions = {},
  ) {}

  /** Adds token ids; returns the newly completed text (possibly ''). */
  push(...ids: number[]): string {
    this.ids.push(...ids);
    const before = this.decode(this.prefix, this.read);
    const after = this.decode(this.prefix, this.ids.length);
    if (after.length <= before.length || after.endsWith(REPLACEMENT)) return '';
    this.prefix = this.read;
    this.read = this.ids.length;
    return after.slice(before.length);
  }

  /** The text still held back (an unfinished character at the very end decodes as U+FFFD). */
  flush(): string {
    const before = this.decode(this.prefix, this.read);
    const after = this.decode(this.prefix, this.ids.length);
    this.prefix = this.read = this.ids.length;
    return after.slice(before.length);
  }

  /** All ids pushed so far. */
  get tokens(): readonly number[] {
    return this.ids;
  }

  private decode(from: number, to: number): string {
    return from === to
      ? ''
      : this.tokenizer.decode(this.ids.slice(from, to), { skipSpecialTokens: this.opts.skipSpecialTokens });
  }
}
