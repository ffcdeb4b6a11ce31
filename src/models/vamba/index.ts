export { hasVambaTensors, isVambaConfig, vambaMixerConfig } from './config.js';
export {
  type ConvertOptions,
  type ConvertResult,
  convertQwen2VLToVamba,
  vambaConfigJson,
} from './convert.js';
export { VambaLanguageModel } from './language-model.js';
export { VambaDecoderLayer, type VambaSwitches } from './layer.js';
export { type EncodeOptions, Vamba, VambaSession } from './model.js';
export { estimateVambaMemory, type VambaMemoryEstimate, type VambaMemoryOptions } from './size.js';
export {
  VAMBA_EVAL_SETTINGS,
  VAMBA_HOUR_SETTINGS,
  type VambaVideoOptions,
  type VambaVideoSettings,
  vambaVideoSettings,
} from './video.js';
export { keyDifferences, keyDigest, VideoHandle, type VideoKey } from './video-handle.js';
export { loadVambaParams, vambaParamCount, vambaSpecs } from './weights.js';
