export { createServer, type LongshotServer, type ServeOptions } from './app.js';
export { ApiError } from './errors.js';
export type { MediaPolicy } from './media.js';
export { type ChatRequest, type MediaRef, parseChatRequest } from './request.js';
