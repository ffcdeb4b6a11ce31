/** OpenAI-style error bodies (`{"error": {message, type, param, code}}`) and how longshot errors map to them. */
import { LongshotError } from '../errors.js';

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
    super(message);
  }

  get body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, 'invalid_request_error', param, code);

/** The error a failed request reports: user mistakes are 4xx with the library's message, bugs are a bare 500. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof LongshotError) {
    if (e.kind === 'input' || e.kind === 'usage') return badRequest(e.message, null, 'invalid_media');
    if (e.kind === 'oom') return new ApiError(400, e.message, 'invalid_request_error', null, 'out_of_memory');
    return new ApiError(500, e.message, 'server_error', null, 'model_error');
  }
  if ((e as Error)?.name === 'AbortError' || (e as Error)?.name === 'TimeoutError')
    return new ApiError(504, 'the request timed out', 'timeout', null, 'timeout');
  return new ApiError(500, 'internal server error', 'server_error');
}
