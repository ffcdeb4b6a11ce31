import '../backends/index.js'; // a subpath entry: the built-in backends are registered as from the root

export * from './backend.js';
export * from './device.js';
export * from './dtype.js';
export * as gradOps from './grad-ops.js';
export * as ops from './ops.js';
export { disposeAll, isTensor, keep, tidy } from './scope.js';
export * from './shape.js';
export { Buffer, Tensor } from './tensor.js';
