import './backends/cpu/index.js';

export * from './errors.js';
export * from './io/index.js';
export * from './runtime/index.js';
