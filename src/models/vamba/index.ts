import '../../backends/index.js'; // a subpath entry: the built-in backends are registered as from the root

export { hasVambaTensors, isVambaCheckpoint, isVambaConfig, vambaMixerConfig } from './config.js';
export {
  type ConvertOptions,
  type ConvertResult,
  convertQwen2VLToVamba,
  vambaConfigJson,
} from './convert.js';
export { vamba } from './family.js';
export { VambaLanguageModel } from './language-model.js';
export { VambaDecoderLayer, type VambaSwitches } from './layer.js';
export { Vamba, type VambaEncodeOptions, VambaSession } from './model.js';
export { VAMBA_SYSTEM_PROMPT, VAMBA_VISION_MARKER, vambaPrompt } from './prompt.js';
export { estimateVambaMemory, type VambaMemoryEstimate, type VambaMemoryOptions } from './size.js';
export { encodeVideoFrames, type VambaFramesOptions } from './video.js';
export { keyDifferences, VambaVideoHandle, type VideoKey } from './video-handle.js';
export { loadVambaParams, vambaParamCount, vambaSpecs } from './weights.js';
