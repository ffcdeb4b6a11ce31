/**
 * Videos uploaded through the web UI: streamed to a folder of the server's own (removed when it stops) with a
 * size limit, checked to be a video ffmpeg can open, and named by `upload:<id>` URLs that requests and the
 * player use like a path under the media root.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openVideo } from '../../media/index.js';
import { ApiError, badRequest } from '../errors.js';

export interface Upload {
  url: string;
  name: string;
  bytes: number;
}

const MiB = 2 ** 20;

export class UploadStore {
  private dir: Promise<string> | null = null;
  private readonly files = new Map<string, string>();

  constructor(readonly maxBytes: number) {}

  /** The file of upload `id`, if this server holds it. */
  path(id: string): string | undefined {
    return this.files.get(id);
  }

  /** Streams `body` to a new file (at most maxBytes), and keeps it if ffmpeg can open it as a video. */
  async save(body: Readable, name: string, declaredBytes?: number): Promise<Upload> {
    if (declaredBytes !== undefined && declaredBytes > this.maxBytes) throw this.tooLarge(declaredBytes);
    if (declaredBytes === 0) throw badRequest('the upload is empty: choose a video file', 'file');
    this.dir ??= mkdtemp(join(tmpdir(), 'longshot-uploads-'));
    const id = randomBytes(12).toString('hex');
    const ext = extname(name)
      .toLowerCase()
      .replace(/[^.a-z0-9]/g, '')
      .slice(0, 8);
    const path = join(await this.dir, `${id}${ext}`);
    try {
      let bytes = 0;
      const tooLarge = (n: number) => (n > this.maxBytes ? this.tooLarge(n) : null);
      await pipeline(
        body,
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const c of chunks) {
            bytes += c.length;
            const refused = tooLarge(bytes);
            if (refused) throw refused;
            yield c;
          }
        },
        createWriteStream(path),
      );
      if (bytes === 0) throw badRequest('the upload is empty: choose a video file', 'file');
      await using _ = await openVideo(path).catch((e: Error) => {
        throw badRequest(
          `${name} is not a video ffmpeg can read (${e.message.split(path).join(name)}); upload an MP4, WebM, MKV or MOV file`,
          'file',
          'invalid_media',
        );
      });
      this.files.set(id, path);
      return { url: `upload:${id}`, name, bytes: (await stat(path)).size };
    } catch (e) {
      await rm(path, { force: true });
      throw e;
    }
  }

  private tooLarge(bytes: number): ApiError {
    return new ApiError(
      413,
      `the upload is larger than this server accepts (${(bytes / MiB).toFixed(1)} MiB so far, limit ${(this.maxBytes / MiB).toFixed(0)} MiB): upload a shorter or smaller video, or start the server with a larger --max-upload-mb`,
      'invalid_request_error',
      'file',
      'upload_too_large',
    );
  }

  async close(): Promise<void> {
    this.files.clear();
    const dir = this.dir;
    this.dir = null;
    if (dir) await rm(await dir, { recursive: true, force: true });
  }
}
