/**
 * A Hugging Face checkpoint directory's weights: `model.safetensors`, or `model.safetensors.index.json`
 * plus the shards its `weight_map` names. Every shard's header is read and checked when the checkpoint is
 * opened (cheap: headers only), so a missing shard or a tensor the index promises but no shard holds is
 * reported up front, not halfway through loading a model.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ModelError } from '../errors.js';
import type { Backend } from '../runtime/backend.js';
import type { Tensor } from '../runtime/tensor.js';
import type { HostTensor } from './convert.js';
import { type LoadOptions, SafetensorsFile, type TensorSource } from './safetensors.js';
import type { TensorInfo } from './safetensors-format.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export interface CheckpointTensorInfo extends TensorInfo {
  /** The file that holds the tensor. */
  readonly file: string;
}

export class Checkpoint implements TensorSource, AsyncDisposable {
  private constructor(
    readonly dir: string,
    readonly files: readonly SafetensorsFile[],
    private readonly where: ReadonlyMap<string, SafetensorsFile>,
    /** The index's `metadata` (e.g. total_size), or the single file's `__metadata__`. */
    readonly metadata: Readonly<Record<string, unknown>>,
  ) {}

  /** Opens a checkpoint directory (or a single .safetensors file). */
  static async open(path: string): Promise<Checkpoint> {
    const st = await stat(path).catch((e) => {
      throw new ModelError(`${path}: checkpoint not found`, { cause: e });
    });
    if (st.isFile()) {
      const f = await SafetensorsFile.open(path);
      return new Checkpoint(path, [f], new Map(f.names().map((n) => [n, f])), f.metadata);
    }
    const names = await readdir(path);
    if (names.includes(INDEX_FILE)) return Checkpoint.openSharded(path);
    if (names.includes(SINGLE_FILE)) return Checkpoint.open(join(path, SINGLE_FILE));
    const found = names.filter((n) => n.endsWith('.safetensors'));
    throw new ModelError(
      `${path}: no weights found: missing ${SINGLE_FILE} and ${INDEX_FILE}` +
        (found.length ? ` (found ${found.join(', ')})` : ' (the directory has no .safetensors files)'),
    );
  }

  private static async openSharded(dir: string): Promise<Checkpoint> {
    const indexPath = join(dir, INDEX_FILE);
    let index: { weight_map?: unknown; metadata?: unknown };
    try {
      index = JSON.parse(await readFile(indexPath, 'utf8'));
    } catch (e) {
      throw new ModelError(`${indexPath}: unreadable index (${(e as Error).message})`, { cause: e });
    }
    const map = index?.weight_map;
    if (map === null || typeof map !== 'object' || Array.isArray(map))
      throw new ModelError(`${indexPath}: malformed index (no "weight_map" object)`);
    const weightMap = map as Record<string, unknown>;
    for (const [name, file] of Object.entries(weightMap))
      if (typeof file !== 'string' || basename(file) !== file || !file)
        throw new ModelError(
          `${indexPath}: tensor "${name}" maps to an invalid file name ${JSON.stringify(file)}`,
        );

    const shardNames = [...new Set(Object.values(weightMap) as string[])].sort();
    const present = new Set(await readdir(dir));
    const missing = shardNames.filter((s) => !present.has(s));
    if (missing.length)
      throw new ModelError(
        `${dir}: ${missing.length} of ${shardNames.length} shard(s) named by ${INDEX_FILE} are missing: ${missing.join(', ')}; download them again`,
      );

    const shards = new Map<string, SafetensorsFile>();
    try {
      for (const s of shardNames) shards.set(s, await SafetensorsFile.open(join(dir, s)));
      const where = new Map<string, SafetensorsFile>();
      const absent: string[] = [];
      for (const [name, s] of Object.entries(weightMap) as [string, string][]) {
        const f = shards.get(s)!;
        if (f.has(name)) where.set(name, f);
        else absent.push(`"${name}" (in ${s})`);
      }
      if (absent.length)
        throw new ModelError(
          `${dir}: ${absent.length} tensor(s) listed in ${INDEX_FILE} are not in their shard: ${absent.slice(0, 10).join(', ')}${absent.length > 10 ? ', …' : ''}`,
        );
      const meta =
        index.metadata && typeof index.metadata === 'object'
          ? (index.metadata as Record<string, unknown>)
          : {};
      return new Checkpoint(dir, [...shards.values()], where, meta);
    } catch (e) {
      await Promise.all([...shards.values()].map((f) => f.close()));
      throw e;
    }
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  info(name: string): CheckpointTensorInfo {
    const f = this.fileOf(name);
    return { ...f.info(name), file: f.path };
  }

  async read(name: string): Promise<HostTensor> {
    return this.fileOf(name).read(name);
  }

  async loadTensor(backend: Backend, name: string, opts?: LoadOptions): Promise<Tensor> {
    return this.fileOf(name).loadTensor(backend, name, opts);
  }

  /** Total bytes of tensor data. */
  get bytes(): number {
    let n = 0;
    for (const name of this.where.keys()) {
      const t = this.fileOf(name).info(name);
      n += t.end - t.begin;
    }
    return n;
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private fileOf(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (!f) throw new ModelError(`${this.dir}: the checkpoint has no tensor named "${name}"`);
    return f;
  }
}
