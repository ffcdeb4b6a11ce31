/**
 * Errors a user can act on. Each names the problem and what to do; the CLI maps `kind` to its exit code
 * (usage 2, input 3, model 4, out of memory 5) and prints the message without a stack trace.
 */
export type ErrorKind = 'usage' | 'input' | 'model' | 'oom';

export class LongshotError extends Error {
  override name = 'LongshotError';
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Options that do not fit together or do not fit the model (`--sampling fps` with Vamba). `field` names the
 * sampling option at fault (a SamplingOptions key), so the server can name the request field.
 */
export class UsageError extends LongshotError {
  override name = 'UsageError';
  constructor(
    message: string,
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super('usage', message, options);
  }
}

/** A bad file, video, URL or request payload. */
export class InputError extends LongshotError {
  override name = 'InputError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('input', message, options);
  }
}

/** A missing, malformed or unsupported checkpoint or config. */
export class ModelError extends LongshotError {
  override name = 'ModelError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('model', message, options);
  }
}

/** A request that does not fit in memory (found before starting, or reported by a device). */
export class OutOfMemoryError extends LongshotError {
  override name = 'OutOfMemoryError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('oom', message, options);
  }
}

export const EXIT_CODES: Record<ErrorKind, number> = { usage: 2, input: 3, model: 4, oom: 5 };

/** Longest message printed or sent in full; a longer one (a whole ffmpeg filter, say) is cut. */
export const MAX_MESSAGE_CHARS = 500;

/** `message` cut to MAX_MESSAGE_CHARS, saying how much was left out. */
export function capMessage(message: string): string {
  if (message.length <= MAX_MESSAGE_CHARS) return message;
  return `${message.slice(0, MAX_MESSAGE_CHARS)}…(${message.length - MAX_MESSAGE_CHARS} more characters)`;
}
