/**
 * Writing a checkpoint's tensors as Hugging Face does: shards in order of up to `shardBytes` each (a larger
 * tensor gets a shard of its own), one shard named model.safetensors, several named model-0000i-of-0000n with
 * an index; stale shards in the directory are removed first. Each tensor is produced only when written.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { INDEX_FILE, SINGLE_FILE } from './checkpoint.js';
import { SAFETENSORS_DTYPE_BYTES } from './safetensors-format.js';
import { type LazyEntry, saveSafetensors } from './safetensors-write.js';

export interface ShardedResult {
  tensors: number;
  parameters: number;
  bytes: number;
  shards: string[];
}

const numel = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);

export async function writeShardedCheckpoint(
  outDir: string,
  entries: readonly (readonly [string, LazyEntry])[],
  shardBytes: number,
  onProgress?: (written: number, total: number) => void,
): Promise<ShardedResult> {
  const groups: Array<Array<readonly [string, LazyEntry]>> = [[]];
  let used = 0;
  for (const e of entries) {
    const bytes = numel(e[1].shape) * SAFETENSORS_DTYPE_BYTES[e[1].dtype];
    if (used > 0 && used + bytes > shardBytes) {
      groups.push([]);
      used = 0;
    }
    groups[groups.length - 1].push(e);
    used += bytes;
  }
  await mkdir(outDir, { recursive: true });
  for (const stale of (await readdir(outDir)).filter((f) => f.endsWith('.safetensors') || f === INDEX_FILE))
    await rm(join(outDir, stale));
  const shardName = (i: number) =>
    groups.length === 1
      ? SINGLE_FILE
      : `model-${String(i + 1).padStart(5, '0')}-of-${String(groups.length).padStart(5, '0')}.safetensors`;
  let written = 0;
  let totalBytes = 0;
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < groups.length; i++) {
    const counted = groups[i].map(([name, e]): [string, LazyEntry] => [
      name,
      {
        ...e,
        load: async () => {
          const t = await e.load();
          onProgress?.(++written, entries.length);
          return t;
        },
      },
    ]);
    await saveSafetensors(join(outDir, shardName(i)), counted, { metadata: { format: 'pt' } });
    for (const [name, e] of groups[i]) {
      weightMap[name] = shardName(i);
      totalBytes += numel(e.shape) * SAFETENSORS_DTYPE_BYTES[e.dtype];
    }
  }
  if (groups.length > 1)
    await writeFile(
      join(outDir, INDEX_FILE),
      `${JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2)}\n`,
    );
  return {
    tensors: entries.length,
    parameters: entries.reduce((n, [, e]) => n + numel(e.shape), 0),
    bytes: totalBytes,
    shards: groups.map((_, i) => shardName(i)),
  };
}
