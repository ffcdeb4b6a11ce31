/**
 * Sends a file with HTTP range support (RFC 9110 §14): one `bytes=a-b`, `a-` or `-n` range gets a 206 with
 * Content-Range, an unsatisfiable one a 416; anything else the whole file. Browsers' video players seek
 * with ranges, so the UI's player needs them.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';

const TYPES: Record<string, string> = {
  '.mp4': 'video/mp4',
  '.m4v': 'video/mp4',
  '.mov': 'video/quicktime',
  '.webm': 'video/webm',
  '.mkv': 'video/x-matroska',
  '.avi': 'video/x-msvideo',
  '.ogv': 'video/ogg',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export const contentType = (path: string) => TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';

/** The byte range [start, end] (inclusive) a Range header asks of a `size`-byte file; null: the whole file. */
export function byteRange(header: string | undefined, size: number): { start: number; end: number } | null {
  const m = header?.match(/^bytes=(\d*)-(\d*)$/);
  if (!m || (m[1] === '' && m[2] === '')) return null; // absent, multi-range or malformed: send it all
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end)
    throw new ApiError(
      416,
      `range ${header} is outside the file's ${size} bytes`,
      'invalid_request_error',
      'range',
    );
  return { start, end };
}

export async function sendFile(
  req: FastifyRequest,
  reply: FastifyReply,
  path: string,
): Promise<FastifyReply> {
  const { size } = await stat(path);
  const range = byteRange(req.headers.range, size);
  void reply.header('accept-ranges', 'bytes').header('content-type', contentType(path));
  if (!range) return reply.header('content-length', size).send(createReadStream(path));
  return reply
    .status(206)
    .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
    .header('content-length', range.end - range.start + 1)
    .send(createReadStream(path, range));
}
