/**
 * Encoded videos in a folder every worker can read (`longshot worker --encodings-dir`): one file per video
 * content, model and sampling, so another worker, or this one after a restart, answers without decoding the
 * video again. Files are written atomically (VideoLM.saveVideo renames a finished file into place), so
 * workers that save the same encoding at once leave one whole file, and a reader never sees half of one.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import type { VideoHandle } from '../facade/engine.js';
import type { VideoLM } from '../facade/video-lm.js';
import { type JobSpec, samplingOfJob } from './jobs.js';
import type { HandleStore } from './video-cache.js';

export class EncodingsDir implements HandleStore {
  private constructor(
    readonly dir: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Creates the folder if needed. */
  static async open(dir: string, log: (line: string) => void = () => {}): Promise<EncodingsDir> {
    await mkdir(dir, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
      throw new UsageError(`--encodings-dir ${dir}: cannot create it (${e.code ?? e.message})`);
    });
    return new EncodingsDir(dir, log);
  }

  /** The job's saved encoding; none when it is not there (or unreadable: the video is then encoded again). */
  async load(model: VideoLM, _key: string, job: JobSpec): Promise<VideoHandle | undefined> {
    const path = await this.fileOf(model, job).catch(() => undefined); // a missing video fails in encodeVideo
    if (!path || !(await stat(path).catch(() => null))) return undefined;
    try {
      return await model.loadVideo(path, samplingOfJob(job));
    } catch (e) {
      this.log(`${path}: ${(e as Error).message}; encoding ${job.video} again`);
      return undefined;
    }
  }

  /** A save that fails (a full disk, an image Qwen2-VL does not save) is logged: the job still gets its answer. */
  async save(model: VideoLM, _key: string, handle: VideoHandle, job: JobSpec): Promise<void> {
    try {
      await model.saveVideo(handle, await this.fileOf(model, job));
    } catch (e) {
      this.log(`${job.video}: not saved to ${this.dir}: ${(e as Error).message}`);
    }
  }

  /** Named by the video's content (a URL by itself), the model as named and its dtype, and the sampling. */
  private async fileOf(model: VideoLM, job: JobSpec): Promise<string> {
    const content = /^[a-z][a-z0-9+.-]*:/i.test(job.video) ? job.video : await fileDigest(job.video);
    const { id, dtype } = model.info;
    const name = sha256(JSON.stringify([content, id, dtype, Object.entries(samplingOfJob(job)).sort()]));
    return join(this.dir, `${name.slice(0, 40)}.safetensors`);
  }
}

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
