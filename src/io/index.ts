export { Checkpoint, type CheckpointTensorInfo, INDEX_FILE, SINGLE_FILE } from './checkpoint.js';
export {
  defaultRuntimeDType,
  type HostArray,
  type HostTensor,
  hostView,
  SAFETENSORS_DTYPE_OF,
  toRuntime,
} from './convert.js';
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
