/**
 * OpenAI-style error bodies (`{"error": {message, type, param, code}}`) and how longshot errors map to them.
 * Messages are capped (capMessage), so a client never gets a multi-kilobyte line.
 */
import { capMessage, LongshotError, UsageError } from '../errors.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Seconds a client should wait before retrying (429/503). */
    readonly retryAfter?: number,
  ) {
    super(capMessage(message));
  }

  get body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, 'invalid_request_error', param, code);

/** The request field a sampling or generation option comes from (UsageError.field holds the option's name). */
const REQUEST_FIELD: Record<string, string> = {
  frames: 'frames',
  fps: 'fps',
  sampling: 'sampling',
  maxEdge: 'max_edge',
  minEdge: 'min_edge',
  reasoningBudget: 'reasoning_budget',
};

/** Where in the request a failure arose, and how to show it to the client. */
export interface ErrorContext {
  /** The request field the work was about (the media part's URL, `messages`). */
  param: string | null;
  /** Hides server-side names (absolute paths, temporary files) in the message. */
  redact?: (text: string) => string;
}

/**
 * The error a failed request reports: user mistakes are 4xx with the library's message naming the field,
 * bugs are a bare 500.
 */
export function toApiError(e: unknown, ctx: ErrorContext = { param: null }): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof LongshotError) {
    const message = ctx.redact ? ctx.redact(e.message) : e.message;
    if (e.kind === 'usage') {
      const field = e instanceof UsageError && e.field ? REQUEST_FIELD[e.field] : undefined;
      return badRequest(message, field ?? ctx.param);
    }
    if (e.kind === 'input') return badRequest(message, ctx.param, 'invalid_media');
    if (e.kind === 'oom')
      return new ApiError(400, message, 'invalid_request_error', ctx.param, 'out_of_memory');
    return new ApiError(500, message, 'server_error', ctx.param, 'model_error');
  }
  if ((e as Error)?.name === 'AbortError' || (e as Error)?.name === 'TimeoutError')
    return new ApiError(504, 'the request timed out', 'timeout', null, 'timeout');
  return new ApiError(500, 'internal server error', 'server_error');
}
