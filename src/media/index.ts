export type { Frame } from './decode.js';
export {
  findTools,
  liveProcessCount,
  type ToolOptions,
  type ToolPaths,
  type ToolVersion,
  toolVersions,
} from './ffmpeg.js';
export { imageSequenceVideo } from './image-sequence.js';
export {
  checkSource,
  type LiveSourceOptions,
  liveFrames,
  type SourceKind,
  sourceKind,
  type TimedFrame,
} from './live-source.js';
export { encodePng } from './png.js';
export { type FrameIndex, MAX_PIXELS, MAX_SIDE, type MediaInfo, type StreamInfo } from './probe.js';
export {
  checkFrameLoss,
  DEFAULT_MAX_LOST_FRACTION,
  type DecodeReport,
  decodeReportJson,
  describeFrameLoss,
  type LossPolicy,
  type LostRange,
  type SkippedFrame,
} from './report.js';
export { boundEdges, getResizeOutputImageSize, type Size, type TargetSize } from './resize.js';
export {
  type Clip,
  clipFrames,
  qwenFrameCount,
  roundHalfEven,
  type SamplingPolicy,
  sampleIndices,
} from './sampling.js';
export type { FetchOptions, MediaInput } from './source.js';
export {
  decodeFrames,
  type FrameOptions,
  FrameStream,
  type OpenOptions,
  openVideo,
  probe,
  type Sample,
  Video,
} from './video.js';
