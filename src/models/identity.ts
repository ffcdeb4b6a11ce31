/** A checkpoint's identity, for files derived from it (saved video encodings) to name what made them. */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Checkpoint } from '../io/checkpoint.js';

/** sha256 over config.json and every tensor's name, dtype, shape and byte size. */
export async function modelIdentity(dir: string, checkpoint: Checkpoint): Promise<string> {
  const h = createHash('sha256');
  h.update(await readFile(join(dir, 'config.json')));
  for (const name of checkpoint.names().sort()) {
    const i = checkpoint.info(name);
    h.update(`${name}|${i.dtype}|${i.shape.join('x')}|${i.end - i.begin}\n`);
  }
  return h.digest('hex');
}
