import './backends/cpu/index.js';
import './backends/cuda/index.js';

export * from './errors.js';
export { Answer, type Generation } from './facade/answer.js';
export { DEFAULT_MODEL_DIR } from './facade/default-model.js';
// Explicit, so the facade's VideoHandle/EncodeOptions take precedence at the root over the Vamba model
// classes of the same name (those stay importable from src/models/vamba).
export type {
  ChatEngine,
  ChatOptions,
  EncodedVideo,
  EncodeOptions,
  ModelRunner,
  VideoHandle,
} from './facade/engine.js';
export {
  detectArchitecture,
  estimateMemory,
  inspectModel,
  type MemoryEstimate,
  type ModelSummary,
} from './facade/inspect.js';
export { type RunnerLoader, registerRunner } from './facade/registry.js';
export type * from './facade/types.js';
export { type AskOptions, policyOf, VideoLM } from './facade/video-lm.js';
export * from './generate/index.js';
export {
  cachedSnapshot,
  type DownloadReporter,
  type HubOptions,
  resolveModel,
  type Snapshot,
  snapshotDownload,
} from './hub/index.js';
export * from './io/index.js';
export * from './media/index.js';
export { assertFits, deviceMemoryBytes } from './models/fit.js';
export * from './models/qwen2vl/index.js';
export * from './models/vamba/index.js';
export * as nn from './nn/index.js';
export * from './runtime/index.js';
export { ApiError, createServer, type LongshotServer, type ServeOptions } from './serve/index.js';
