/**
 * The encoded videos one worker holds, least recently used first out. Redis records who holds what, so that
 * other workers can route questions about a video here. A HandleStore, when given, saves each encoding to a
 * shared place and loads it back on another worker or after a restart.
 */
import type { VideoHandle } from '../facade/engine.js';
import type { VideoLM } from '../facade/video-lm.js';
import { type JobSpec, samplingOfJob } from './jobs.js';
import type { Store } from './store.js';

/**
 * Saved encodings of jobs' videos (`key` is the job's `videoKey`: its video and sampling), e.g. EncodingsDir,
 * a shared folder.
 */
export interface HandleStore {
  load(model: VideoLM, key: string, job: JobSpec): Promise<VideoHandle | undefined>;
  save(model: VideoLM, key: string, handle: VideoHandle, job: JobSpec): Promise<void>;
}

export class VideoCache {
  private readonly handles = new Map<string, VideoHandle>();

  constructor(
    private readonly model: VideoLM,
    private readonly store: Store,
    private readonly worker: string,
    private readonly capacity: number,
    private readonly saved?: HandleStore,
  ) {}

  has(key: string): boolean {
    return this.handles.has(key);
  }

  /** The job's video encoding: held, saved, or encoded now. */
  async get(key: string, job: JobSpec): Promise<VideoHandle> {
    const held = this.handles.get(key);
    if (held) {
      this.handles.delete(key); // re-inserted as the most recently used
      this.handles.set(key, held);
      return held;
    }
    let handle = await this.saved?.load(this.model, key, job);
    if (!handle) {
      handle = await this.model.encodeVideo(job.video, samplingOfJob(job));
      await this.saved?.save(this.model, key, handle, job);
    }
    this.handles.set(key, handle);
    await this.store.hold(this.worker, key);
    for (const [old, h] of this.handles) {
      if (this.handles.size <= this.capacity) break;
      this.handles.delete(old);
      h.dispose();
      await this.store.release(this.worker, old);
    }
    return handle;
  }

  dispose(): void {
    for (const h of this.handles.values()) h.dispose();
    this.handles.clear();
  }
}
