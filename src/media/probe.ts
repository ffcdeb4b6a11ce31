/**
 * What ffprobe says about a file: the container header (`probeFile`) and, when frame-accurate decoding
 * needs it, the frame index (`scanFrames`): every video packet's timestamp and key flag, read without
 * decoding. The index is what makes seeking exact and VFR timestamps right.
 */
import { InputError } from '../errors.js';
import { decodableCodecs, runTool } from './ffmpeg.js';

export interface StreamInfo {
  index: number;
  type: string;
  codec: string | null;
  width?: number;
  height?: number;
  /** Audio only. */
  sampleRate?: number;
  channels?: number;
}

export interface MediaInfo {
  kind: 'video' | 'image';
  /** ffprobe's format name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, `png_pipe`. */
  container: string;
  /** The video stream's codec, e.g. `h264`, `vp9`, `mjpeg`, `png`. */
  codec: string;
  /** Index of the video stream used. */
  streamIndex: number;
  /** Displayed size, after rotation. */
  width: number;
  height: number;
  /** Stored (coded) size, before rotation. */
  codedWidth: number;
  codedHeight: number;
  /** Clockwise degrees the player turns the stored picture; decoded frames come out turned. */
  rotation: 0 | 90 | 180 | 270;
  /** Average frame rate (frames / second); 0 for an image. */
  fps: number;
  durationSec: number | null;
  /** From the header (`nb_frames`) or, after a scan, counted exactly; null when unknown. */
  frameCount: number | null;
  frameCountExact: boolean;
  /** The header's nominal rate differs from the average, or (after a scan) frame gaps vary by more than 1%. */
  variableFrameRate: boolean;
  /** Frames the header promises that the file does not hold (a truncated file; known after a scan, else 0). */
  missingFrames: number;
  sizeBytes: number;
  bitRate: number | null;
  streams: StreamInfo[];
  /** Seconds per timestamp unit of the video stream. */
  timeBase: number;
  /** The container's start time (what ffmpeg's `-ss` counts from). */
  startTimeSec: number;
}

/** Limits that reject absurd pictures before any decoding (a frame of 16384² RGB is 805 MB). */
export const MAX_SIDE = 16384;
export const MAX_PIXELS = 8192 * 8192;

type Json = Record<string, unknown>;

function num(v: unknown): number | null {
  const x = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : Number.NaN;
  return Number.isFinite(x) ? x : null;
}

function rational(v: unknown): number {
  if (typeof v !== 'string') return 0;
  const [a, b] = v.split('/').map(Number);
  return b ? a / b : 0;
}

/** Clockwise display rotation from the display matrix (counter-clockwise degrees) or the legacy tag. */
function rotationOf(stream: Json): MediaInfo['rotation'] {
  let cw = 0;
  const sides = (stream.side_data_list as Json[] | undefined) ?? [];
  const matrix = sides.find((s) => num(s.rotation) !== null);
  if (matrix) cw = -num(matrix.rotation)!;
  else cw = num((stream.tags as Json | undefined)?.rotate) ?? 0;
  const r = (((Math.round(cw / 90) * 90) % 360) + 360) % 360;
  return r as MediaInfo['rotation'];
}

export async function probeFile(
  path: string,
  label: string,
  sizeBytes: number,
  tools: { ffmpeg: string; ffprobe: string },
  signal?: AbortSignal,
): Promise<MediaInfo> {
  const { code, stdout, stderr } = await runTool(
    tools.ffprobe,
    ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', path],
    { signal, timeoutMs: 30_000 },
  );
  let parsed: Json = {};
  try {
    parsed = JSON.parse(stdout || '{}') as Json;
  } catch {
    // Fall through: an unreadable answer means an unreadable file.
  }
  const format = parsed.format as Json | undefined;
  if (code !== 0 || !format) {
    const why =
      stderr
        .trim()
        .split('\n')
        .pop()
        ?.replace(/^.*?: /, '') || 'unrecognised format';
    throw new InputError(`${label} is not a video or image file ffmpeg can read (${why})`);
  }
  const rawStreams = (parsed.streams as Json[] | undefined) ?? [];
  const streams: StreamInfo[] = rawStreams.map((s) => ({
    index: num(s.index) ?? 0,
    type: String(s.codec_type ?? 'unknown'),
    codec: typeof s.codec_name === 'string' ? s.codec_name : null,
    ...(s.codec_type === 'video' ? { width: num(s.width) ?? 0, height: num(s.height) ?? 0 } : {}),
    ...(s.codec_type === 'audio'
      ? { sampleRate: num(s.sample_rate) ?? 0, channels: num(s.channels) ?? 0 }
      : {}),
  }));
  // Cover art in audio files is a "video" stream with one picture; it is not a video.
  const video = rawStreams.find(
    (s) => s.codec_type === 'video' && !(s.disposition as Json | undefined)?.attached_pic,
  );
  if (!video) {
    const audio = streams.some((s) => s.type === 'audio');
    throw new InputError(
      audio
        ? `${label} has audio but no video stream`
        : `${label} has no video stream (streams: ${streams.map((s) => s.type).join(', ') || 'none'})`,
    );
  }
  const container = String(format.format_name ?? 'unknown');
  const codec = typeof video.codec_name === 'string' ? video.codec_name : null;
  if (!codec || codec === 'none')
    throw new InputError(
      `${label}: unsupported video codec (tag ${String(video.codec_tag_string ?? 'unknown')}); convert it to H.264, VP9 or AV1`,
    );
  if (!(await decodableCodecs(tools.ffmpeg)).has(codec))
    throw new InputError(
      `${label}: this ffmpeg cannot decode ${codec} video; convert it or point LONGSHOT_FFMPEG at a fuller build`,
    );
  const codedWidth = num(video.width) ?? 0;
  const codedHeight = num(video.height) ?? 0;
  if (codedWidth <= 0 || codedHeight <= 0)
    throw new InputError(`${label}: the video stream has no frame size`);
  if (codedWidth > MAX_SIDE || codedHeight > MAX_SIDE || codedWidth * codedHeight > MAX_PIXELS)
    throw new InputError(
      `${label}: frame size ${codedWidth}x${codedHeight} is too large (limit ${MAX_SIDE} per side and ${MAX_PIXELS} pixels)`,
    );
  const rotation = rotationOf(video);
  const turned = rotation === 90 || rotation === 270;
  const kind = /(^|,)image2$|_pipe$/.test(container) ? 'image' : 'video';
  const avg = rational(video.avg_frame_rate);
  const nominal = rational(video.r_frame_rate);
  const fps = kind === 'image' ? 0 : avg || nominal;
  const durationSec = kind === 'image' ? null : (num(video.duration) ?? num(format.duration));
  const nbFrames = num(video.nb_frames);
  const frameCount = kind === 'image' ? 1 : nbFrames && nbFrames > 0 ? nbFrames : null;
  return {
    kind,
    container,
    codec,
    streamIndex: num(video.index) ?? 0,
    width: turned ? codedHeight : codedWidth,
    height: turned ? codedWidth : codedHeight,
    codedWidth,
    codedHeight,
    rotation,
    fps,
    durationSec,
    frameCount,
    frameCountExact: kind === 'image',
    missingFrames: 0,
    variableFrameRate: kind === 'video' && avg > 0 && nominal > 0 && Math.abs(avg - nominal) > 0.01 * nominal,
    sizeBytes,
    bitRate: num(format.bit_rate),
    streams,
    timeBase: rational(video.time_base) || 1 / 90000,
    startTimeSec: num(format.start_time) ?? 0,
  };
}

/** Every frame of the video stream in presentation order. */
export interface FrameIndex {
  count: number;
  /** Presentation timestamps in stream time-base units (what ffmpeg's `pts` is), ascending. */
  pts: Float64Array;
  /** Seconds from the first frame. */
  timesSec: Float64Array;
  /** 1 where the frame can be decoded without earlier ones (a seek lands there). */
  keyframe: Uint8Array;
  /** Stream time base in seconds per pts unit. */
  timeBase: number;
  /** False for raw streams without timestamps: frames are then addressed by number, without seeking. */
  hasTimestamps: boolean;
  /**
   * Frames the file holds: `count` unless it ends early (truncated), when the frames its header promises
   * beyond that are listed too, at the nominal frame rate, so sampling sees the whole video and the
   * decoder reports the missing ones as skipped.
   */
  available: number;
}

/** Reads every video packet's timestamp and key flag (demuxing only, no decoding). */
export async function scanFrames(
  path: string,
  label: string,
  info: MediaInfo,
  ffprobe: string,
  signal?: AbortSignal,
): Promise<FrameIndex> {
  const { stdout } = await runTool(
    ffprobe,
    [
      '-v',
      'error',
      '-select_streams',
      String(info.streamIndex),
      '-show_entries',
      'packet=pts,dts,flags',
      '-of',
      'csv=p=0',
      path,
    ],
    { signal, timeoutMs: 600_000, maxOutputBytes: 512 << 20 },
  );
  const rows: Array<{ pts: number; key: boolean }> = [];
  let hasTimestamps = true;
  let discarded = 0;
  for (const line of stdout.split('\n')) {
    if (!line) continue;
    const [p, d, flags = ''] = line.split(',');
    if (flags.includes('D')) {
      discarded++; // outside the edit list: decoded for reference, never shown
      continue;
    }
    const t = num(p) ?? num(d);
    if (t === null) hasTimestamps = false;
    rows.push({ pts: t ?? rows.length, key: flags.startsWith('K') });
  }
  if (!hasTimestamps) for (const [i, r] of rows.entries()) r.pts = i;
  rows.sort((a, b) => a.pts - b.pts);
  const available = rows.length;
  if (available === 0) throw new InputError(`${label} contains no video frames (zero duration)`);
  const missing = hasTimestamps ? missingFrames(info, rows, discarded) : 0;
  const gap = missing > 0 ? 1 / (info.fps * info.timeBase) : 0;
  for (let k = 1; k <= missing; k++) rows.push({ pts: rows[available - 1].pts + k * gap, key: false });
  const count = rows.length;
  const pts = new Float64Array(count);
  const timesSec = new Float64Array(count);
  const keyframe = new Uint8Array(count);
  const step = hasTimestamps ? info.timeBase : 1 / (info.fps || 1);
  for (let i = 0; i < count; i++) {
    pts[i] = rows[i].pts;
    timesSec[i] = (rows[i].pts - rows[0].pts) * step;
    keyframe[i] = rows[i].key ? 1 : 0;
  }
  keyframe[0] = 1;
  return { count, pts, timesSec, keyframe, timeBase: info.timeBase, hasTimestamps, available };
}

/**
 * How many frames the header promises beyond those found, from its frame count (MP4 `nb_frames`, which
 * counts discarded packets too) or, where there is none (Matroska), its duration at the average rate.
 * Less than half a second short is taken as header rounding, not as a truncated file.
 */
function missingFrames(info: MediaInfo, rows: Array<{ pts: number }>, discarded: number): number {
  if (!(info.fps > 0)) return 0;
  let missing: number;
  if (info.frameCount !== null) missing = info.frameCount - rows.length - discarded;
  else if (info.durationSec !== null) {
    const end = (rows[rows.length - 1].pts - rows[0].pts) * info.timeBase + 1 / info.fps;
    missing = Math.round((info.durationSec - end) * info.fps);
  } else return 0;
  return missing > 0.5 * info.fps ? missing : 0;
}

/** Frame gaps vary by more than 1% of the median gap. */
export function isVariableRate(index: FrameIndex): boolean {
  if (index.count < 3) return false;
  const gaps = Array.from({ length: index.count - 1 }, (_, i) => index.pts[i + 1] - index.pts[i]).sort(
    (a, b) => a - b,
  );
  const median = gaps[gaps.length >> 1];
  return gaps[gaps.length - 1] - gaps[0] > 0.01 * median;
}
