import './backends/cpu/index.js';
import './backends/cuda/index.js';

export * from './errors.js';
export * from './runtime/index.js';
