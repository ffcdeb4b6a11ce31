/**
 * The entries of a zip archive whose members are stored uncompressed, as torch.save writes them (with ZIP64
 * records past 4 GiB): each member's name and the byte range of its data in the file. Nothing is extracted;
 * callers read the ranges with positioned reads.
 */
import type { FileHandle } from 'node:fs/promises';
import { ModelError } from '../errors.js';

export interface ZipEntry {
  name: string;
  /** Absolute byte offset of the data in the file. */
  start: number;
  size: number;
}

const EOCD = 0x06054b50;
const EOCD64_LOCATOR = 0x07064b50;
const EOCD64 = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;

async function readAt(h: FileHandle, pos: number, n: number): Promise<DataView> {
  const buf = new Uint8Array(n);
  const { bytesRead } = await h.read(buf, 0, n, pos);
  if (bytesRead !== n) throw new RangeError('short read');
  return new DataView(buf.buffer);
}

const u64 = (v: DataView, at: number): number => Number(v.getBigUint64(at, true));

/** Reads the central directory of the zip file open as `h` (`size` bytes); `path` names it in errors. */
export async function readZipEntries(h: FileHandle, size: number, path: string): Promise<ZipEntry[]> {
  const bad = (why: string) => new ModelError(`${path}: not a readable zip archive (${why})`);
  try {
    const tail = Math.min(size, 22 + 65535);
    const end = await readAt(h, size - tail, tail);
    let at = -1;
    for (let i = tail - 22; i >= 0; i--)
      if (end.getUint32(i, true) === EOCD) {
        at = i;
        break;
      }
    if (at < 0) throw bad('no end-of-central-directory record');
    let count = end.getUint16(at + 10, true);
    let dirSize = end.getUint32(at + 12, true);
    let dirStart = end.getUint32(at + 16, true);
    if (count === 0xffff || dirSize === U32_MAX || dirStart === U32_MAX) {
      const locPos = size - tail + at - 20;
      const loc = await readAt(h, locPos, 20);
      if (loc.getUint32(0, true) !== EOCD64_LOCATOR) throw bad('no ZIP64 locator');
      const rec = await readAt(h, u64(loc, 8), 56);
      if (rec.getUint32(0, true) !== EOCD64) throw bad('no ZIP64 end record');
      count = u64(rec, 32);
      dirSize = u64(rec, 40);
      dirStart = u64(rec, 48);
    }
    const dir = await readAt(h, dirStart, dirSize);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let e = 0; e < count; e++) {
      if (dir.getUint32(p, true) !== CENTRAL) throw bad('a broken central directory');
      const method = dir.getUint16(p + 10, true);
      let csize = dir.getUint32(p + 20, true);
      let usize = dir.getUint32(p + 24, true);
      const nameLen = dir.getUint16(p + 28, true);
      const extraLen = dir.getUint16(p + 30, true);
      const commentLen = dir.getUint16(p + 32, true);
      let local = dir.getUint32(p + 42, true);
      const name = new TextDecoder().decode(new Uint8Array(dir.buffer, p + 46, nameLen));
      // ZIP64 extra field: the 64-bit values of the fields that read 0xFFFFFFFF, in this order.
      let x = p + 46 + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = dir.getUint16(x, true);
        const len = dir.getUint16(x + 2, true);
        if (id === 1) {
          let q = x + 4;
          if (usize === U32_MAX) {
            usize = u64(dir, q);
            q += 8;
          }
          if (csize === U32_MAX) {
            csize = u64(dir, q);
            q += 8;
          }
          if (local === U32_MAX) local = u64(dir, q);
        }
        x += 4 + len;
      }
      if (method !== 0) throw bad(`member ${name} is compressed (method ${method}); torch.save stores them`);
      const lh = await readAt(h, local, 30);
      if (lh.getUint32(0, true) !== LOCAL) throw bad(`member ${name} has no local header`);
      const start = local + 30 + lh.getUint16(26, true) + lh.getUint16(28, true);
      if (start + usize > size) throw bad(`member ${name} runs past the end of the file`);
      entries.push({ name, start, size: usize });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return entries;
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw bad(e instanceof RangeError ? 'truncated' : String(e));
  }
}
