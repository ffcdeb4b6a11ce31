/** Which ModelRunner serves each architecture. Model code is imported only when a model is loaded. */
import type { Backend } from '../runtime/backend.js';
import type { ModelRunner } from './engine.js';
import type { ModelSummary } from './inspect.js';
import type { Architecture } from './types.js';

export type RunnerLoader = (summary: ModelSummary, backend: Backend, id: string) => Promise<ModelRunner>;

const loaders = new Map<Architecture, RunnerLoader>([
  ['qwen2_vl', async (...a) => (await import('../models/qwen2vl/runner.js')).loadQwen2VLRunner(...a)],
  ['vamba', async (...a) => (await import('../models/vamba/runner.js')).loadVambaRunner(...a)],
]);

/** Replaces or adds the runner of an architecture (model families, tests). */
export function registerRunner(architecture: Architecture, loader: RunnerLoader): void {
  loaders.set(architecture, loader);
}

export function runnerLoader(architecture: Architecture): RunnerLoader | undefined {
  return loaders.get(architecture);
}
