/** `longshot/models`: the model-family interface and the registry, for adding a family. */
import '../backends/index.js';

export type {
  CheckpointFiles,
  CheckpointSource,
  DurationRule,
  EncodedVideo,
  FrameBatchContext,
  FrameGeometry,
  MemoryEstimate,
  ModelDescription,
  ModelFamily,
  ModelRunner,
  OpenedCheckpoint,
  SamplingKind,
  VideoPolicy,
  WeightSummary,
} from './family.js';
export { memoryEstimate, runnerInfo } from './family.js';
export { familyOf, modelFamilies, registerFamily, unregisterFamily } from './registry.js';
