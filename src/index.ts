import './backends/cpu/index.js';
import './backends/cuda/index.js';

export * from './errors.js';
export * from './generate/index.js';
export * from './io/index.js';
export * from './media/index.js';
export { assertFits, deviceMemoryBytes } from './models/fit.js';
export * from './models/qwen2vl/index.js';
export * from './models/vamba/index.js';
export * as nn from './nn/index.js';
export * from './runtime/index.js';
