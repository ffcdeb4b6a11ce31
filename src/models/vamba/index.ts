export { hasVambaTensors, isVambaConfig, vambaMixerConfig } from './config.js';
export { CrossAttention, type CrossKV } from './cross-attention.js';
export { VambaLanguageModel } from './language-model.js';
export { VambaDecoderLayer, type VambaSwitches } from './layer.js';
export { type EncodeOptions, Vamba, VambaSession } from './model.js';
export { keyDifferences, keyDigest, VideoHandle, type VideoKey } from './video-handle.js';
export { loadVambaParams, vambaParamCount, vambaSpecs } from './weights.js';
