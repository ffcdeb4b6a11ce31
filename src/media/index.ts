export type { Frame, SkippedFrame } from './decode.js';
export { findTools, liveProcessCount, type ToolOptions, type ToolPaths } from './ffmpeg.js';
export { encodePng } from './png.js';
export { type FrameIndex, MAX_PIXELS, MAX_SIDE, type MediaInfo, type StreamInfo } from './probe.js';
export { boundEdges, getResizeOutputImageSize, type Size, type TargetSize } from './resize.js';
export { qwenFrameCount, roundHalfEven, type SamplingPolicy, sampleIndices } from './sampling.js';
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
