import { ModelError, UsageError } from '../errors.js';
import type { JsonObject } from '../io/json-fields.js';
import type { VideoPolicy } from '../models/family.js';
import type { SamplingOptions } from './types.js';

/**
 * A checkpoint may say how its videos should be sampled, under `longshot_video_defaults` in config.json
 * (e.g. the embedded needle model, trained on every frame at 112×112). Caller options still win; without the
 * key the model family's reference preprocessing applies.
 */
const VIDEO_DEFAULTS_KEY = 'longshot_video_defaults';

export function videoDefaultsOf(config: JsonObject, source: string): SamplingOptions {
  const raw = config[VIDEO_DEFAULTS_KEY];
  if (raw === undefined) return {};
  const bad = (why: string) => new ModelError(`${source}: config.json ${VIDEO_DEFAULTS_KEY} ${why}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('must be an object');
  const out: SamplingOptions = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'sampling') {
      if (v !== 'middle' && v !== 'uniform' && v !== 'fps')
        throw bad(`.sampling must be middle, uniform or fps`);
      out.sampling = v;
    } else if (k === 'frames' || k === 'fps' || k === 'maxEdge' || k === 'minEdge') {
      if (typeof v !== 'number' || !(v > 0)) throw bad(`.${k} must be a positive number`);
      out[k] = v;
    } else throw bad(`has an unknown key '${k}' (known: sampling, frames, fps, maxEdge, minEdge)`);
  }
  return out;
}

/** `defaults` overlaid with the options the caller actually set. */
export function withDefaults<T extends SamplingOptions>(opts: T, defaults: SamplingOptions): T {
  const set = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
  return { ...defaults, ...set } as T;
}

/**
 * The sampling for one video: what the caller set, else the checkpoint's defaults, else the family's policy
 * for a video of this duration (null: unknown, the base defaults).
 */
export function samplingFor(
  policy: VideoPolicy,
  durationSec: number | null,
  opts: SamplingOptions,
  checkpoint: SamplingOptions = {},
): Required<SamplingOptions> {
  let base: SamplingOptions = policy.defaults;
  for (const { fromDurationSec, ...rule } of policy.byDuration ?? [])
    if (durationSec !== null && durationSec >= fromDurationSec) base = { ...base, ...rule };
  const o = withDefaults(withDefaults(opts, checkpoint), base) as Required<SamplingOptions>;
  const s = { frames: o.frames, fps: o.fps, sampling: o.sampling, maxEdge: o.maxEdge, minEdge: o.minEdge };
  if (policy.kinds && !policy.kinds.includes(s.sampling))
    throw new UsageError(
      `this model samples with ${policy.kinds.join(' or ')}, not '${s.sampling}': pass --sampling ${policy.kinds[0]}`,
      'sampling',
    );
  if (!(s.minEdge >= 1 && s.maxEdge >= s.minEdge))
    throw new UsageError(`frame edges must satisfy 1 ≤ minEdge ≤ maxEdge (got ${s.minEdge}/${s.maxEdge})`);
  return s;
}
