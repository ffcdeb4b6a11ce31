import '../../backends/index.js'; // a subpath entry: the built-in backends are registered as from the root

export { type BicubicPrecision, resizeBicubic } from '../../media/bicubic.js';
export {
  MAMBA2_DEFAULTS,
  parseQwen2VLConfig,
  type Qwen2VLConfig,
  type Qwen2VLTextConfig,
  type Qwen2VLVisionConfig,
  readQwen2VLConfig,
  type VisionMambaMixerConfig,
} from './config.js';
export { qwen2vl } from './family.js';
export { Qwen2VL, type Qwen2VLInputs, type Qwen2VLLoadOptions, Qwen2VLSession } from './model.js';
export {
  type PreprocessorConfig,
  parsePreprocessorConfig,
  QWEN2VL_PREPROCESSOR,
  readPreprocessorConfig,
} from './preprocessor-config.js';
export {
  checkpointProcessor,
  defaultProcessor,
  IMAGE_PAD,
  type ProcessorOptions,
  Qwen2VLProcessor,
  type RgbImage,
  type SmartResizeOptions,
  smartResize,
  tokenCount,
  VIDEO_PAD,
  type VisualBatch,
} from './processor.js';
export { getRopeIndex, type RopeIndex, type RopeIndexTokens } from './rope-index.js';
export { countParameters, estimateMemory, type MemoryEstimate, type MemoryEstimateOptions } from './size.js';
export { Qwen2Decoder } from './text.js';
export {
  encodeVisionStream,
  type GridTHW,
  type PixelBatch,
  Qwen2VisionTransformer,
  visionLayout,
} from './vision.js';
export { canonicalName, loadQwen2VLParams, qwen2vlSpecs, textSpecs, visionSpecs } from './weights.js';
