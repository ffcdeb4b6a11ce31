/**
 * What a decode delivered against what was asked for, and the policy that decides whether a partial
 * result may be used: every requested frame is either decoded or listed as skipped, so a truncated or
 * damaged file never yields a confident answer from a fraction of it without saying so.
 */
import { InputError } from '../errors.js';

export interface SkippedFrame {
  index: number;
  timestampSec: number;
  reason: string;
}

/** A stretch of lost frames that were next to each other in the sample (no frame decoded between them). */
export interface LostRange {
  startSec: number;
  endSec: number;
  frames: number;
}

export interface DecodeReport {
  /** 'image': a single picture, delivered as one frame (a model repeats it to a frame pair). */
  kind: 'video' | 'image';
  /** Frames asked for (sample slots, repeats included). */
  requested: number;
  /** Of those, how many were delivered. */
  decoded: number;
  /** One entry per lost slot, in sample order: requested = decoded + skipped.length once decoding has ended. */
  skipped: SkippedFrame[];
  /** The skipped frames merged into time ranges. */
  lostRanges: LostRange[];
}

export interface LossPolicy {
  /** Refuse any lost frame (default false). */
  strict?: boolean;
  /** Refuse when more than this fraction of the requested frames is lost (default 0.25). */
  maxLostFraction?: number;
  /** What the user can do instead, appended to the message (default names `--strict` and `--max-lost`). */
  advice?: string;
}

export const DEFAULT_MAX_LOST_FRACTION = 0.25;

/** Merges skipped frames that follow each other in sample order (`positions`: their slots) into ranges. */
export function lostRanges(skipped: SkippedFrame[], positions: number[]): LostRange[] {
  const ranges: LostRange[] = [];
  let last = Number.NaN;
  for (const [k, s] of skipped.entries()) {
    const range = ranges[ranges.length - 1];
    if (range && positions[k] === last + 1) {
      range.endSec = Math.max(range.endSec, s.timestampSec);
      range.frames++;
    } else ranges.push({ startSec: s.timestampSec, endSec: s.timestampSec, frames: 1 });
    last = positions[k];
  }
  return ranges;
}

function seconds(x: number): string {
  return `${x.toFixed(3)} s`;
}

/** "3 of 32 frames could not be decoded (at 4.000 s, 12.000–14.000 s)", or undefined when none was lost. */
export function describeFrameLoss(report: DecodeReport): string | undefined {
  const lost = report.requested - report.decoded;
  if (lost <= 0) return undefined;
  const shown = report.lostRanges
    .slice(0, 5)
    .map((r) =>
      r.frames === 1 || r.startSec === r.endSec
        ? `at ${seconds(r.startSec)}`
        : `${r.startSec.toFixed(3)}–${seconds(r.endSec)}`,
    );
  const more = report.lostRanges.length > 5 ? ` and ${report.lostRanges.length - 5} more ranges` : '';
  const why = report.skipped[0]?.reason;
  return `${lost} of ${report.requested} frames could not be decoded (${shown.join(', ')}${more})${why ? `: ${why}` : ''}`;
}

/**
 * Applies the loss policy: throws an InputError naming the input, how many frames were lost, where, and
 * what to do, when `strict` and anything was lost, or when more than `maxLostFraction` was lost.
 */
export function checkFrameLoss(label: string, report: DecodeReport, policy: LossPolicy = {}): void {
  const max = policy.maxLostFraction ?? DEFAULT_MAX_LOST_FRACTION;
  if (!(max >= 0 && max <= 1))
    throw new InputError(`the lost-frame threshold must be a fraction from 0 to 1, got ${max}`);
  const what = describeFrameLoss(report);
  if (what === undefined) return;
  const lost = report.requested - report.decoded;
  const advice =
    policy.advice ??
    'the file is truncated or damaged: repair or re-encode it, or allow more lost frames with --max-lost';
  if (policy.strict)
    throw new InputError(`${label}: ${what}; strict mode refuses any lost frame (drop --strict to accept)`);
  if (lost > max * report.requested)
    throw new InputError(`${label}: ${what}; that is over the allowed ${Math.round(max * 100)}%, ${advice}`);
}

/** The report as `--json` and the server's `video` field show it: frames asked for, decoded and lost. */
export function decodeReportJson(r: DecodeReport) {
  return {
    requested: r.requested,
    decoded: r.decoded,
    lost: r.requested - r.decoded,
    lost_ranges: r.lostRanges.map((x) => ({ start_sec: x.startSec, end_sec: x.endSec, frames: x.frames })),
  };
}
