import '../backends/index.js'; // a subpath entry: the built-in backends are registered as from the root

export { type Activation, activation } from './activation.js';
export { SelfAttention, type SelfAttentionConfig, type SelfAttentionInputs } from './attention.js';
export {
  attentionLayers,
  type CacheLayer,
  CacheSnapshot,
  HybridCache,
  type HybridCacheOptions,
} from './cache.js';
export { CrossAttention, type CrossKV } from './cross-attention.js';
export { Linear } from './linear.js';
export {
  disposeState,
  Mamba2,
  Mamba2Block,
  type Mamba2Config,
  type Mamba2State,
  mamba2Config,
} from './mamba2.js';
export { GatedMLP, MLP } from './mlp.js';
export { LayerNorm, RMSNorm } from './norm.js';
export { countParams, diffParams, numelOf, type ParamSpec, ParamStore } from './params.js';
export {
  mrope,
  type Rope,
  type RotaryTable,
  rope1d,
  ropeInvFreq,
  rotaryTensors,
  visionRope2d,
} from './rotary.js';
