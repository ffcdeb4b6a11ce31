/**
 * longshot's public root: `VideoLM` and what a user of it handles (options, results, handles, model info),
 * the errors, and the server. Model families, the runtime, media and nn are subpath exports
 * (`longshot/qwen2vl`, `longshot/vamba`, `longshot/models`, `longshot/runtime`, …; docs/api.md).
 */
import './backends/index.js';

export * from './errors.js';
export { Answer } from './facade/answer.js';
export type { ChatEngine, ChatOptions, EncodeOptions, VideoHandle } from './facade/engine.js';
export type { LiveFrame, LiveStatus, LiveVideo, LiveVideoOptions } from './facade/live.js';
export type * from './facade/types.js';
export { type AskOptions, VideoLM } from './facade/video-lm.js';
export type { DownloadReporter } from './hub/download.js';
export type { MediaInput } from './media/source.js';
export type { DeviceName } from './runtime/backend.js';
export { createServer, type LongshotServer, type ServeOptions } from './serve/index.js';
