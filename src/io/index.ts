/** `longshot/io`: file formats (safetensors, JSON fields, tokenizer and chat templates, generation config, the hub cache). */
export { Checkpoint, type CheckpointTensorInfo, INDEX_FILE, SINGLE_FILE } from './checkpoint.js';
export {
  defaultRuntimeDType,
  type HostArray,
  type HostTensor,
  hostView,
  SAFETENSORS_DTYPE_OF,
  toRuntime,
} from './convert.js';
export { type GenerationConfig, parseGenerationConfig, readGenerationConfig } from './generation-config.js';
export {
  Fields,
  fileExists,
  isObject,
  type JsonObject,
  parsePythonJson,
  readJsonFile,
} from './json-fields.js';
export { RandomWeights, type RandomWeightsOptions, type SpecialInit } from './random-weights.js';
export { type LoadOptions, SafetensorsFile, type TensorSource, uploadHost } from './safetensors.js';
export {
  encodeHeader,
  parseHeader,
  SAFETENSORS_DTYPE_BYTES,
  type SafetensorsDType,
  type SafetensorsHeader,
  type TensorInfo,
} from './safetensors-format.js';
export { type SaveEntry, type SaveOptions, type SaveTensors, saveSafetensors } from './safetensors-write.js';
export { type Decodes, StreamDecoder, type StreamDecoderOptions } from './stream-decoder.js';
export {
  type ChatMessage,
  type ChatTemplateOptions,
  type ContentPart,
  type SpecialTokens,
  Tokenizer,
} from './tokenizer.js';
