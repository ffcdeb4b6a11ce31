import '../backends/index.js'; // a subpath entry: the built-in backends are registered as from the root

export { type Activation, activation } from './activation.js';
export { SelfAttention, type SelfAttentionConfig, type SelfAttentionInputs } from './attention.js';
export { KVCache, type KVCacheOptions } from './kv-cache.js';
export { Linear } from './linear.js';
export { GatedMLP, MLP } from './mlp.js';
export { LayerNorm, RMSNorm } from './norm.js';
export { countParams, diffParams, numelOf, type ParamSpec, ParamStore } from './params.js';
export { mrope, type RotaryTable, rope1d, ropeInvFreq, rotaryTensors, visionRope2d } from './rotary.js';
