import { ModelError } from '../errors.js';
import type { Qwen2VLConfig } from '../models/qwen2vl/config.js';
import type { SamplingOptions } from './types.js';

/**
 * A checkpoint may say how its videos should be sampled, under `longshot_video_defaults` in config.json
 * (e.g. the embedded needle model, trained on every frame at 112×112). Caller options still win; without the
 * key the model family's reference preprocessing applies.
 */
export const VIDEO_DEFAULTS_KEY = 'longshot_video_defaults';

export function videoDefaultsOf(config: Qwen2VLConfig, source: string): SamplingOptions {
  const raw = config.extra[VIDEO_DEFAULTS_KEY];
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
