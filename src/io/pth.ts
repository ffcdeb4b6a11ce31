/**
 * PyTorch `.pth` / `.bin` checkpoints (torch.save's zip format, torch ≥ 1.6) read safely: data.pkl is
 * interpreted by the restricted reader of pickle.ts (state dicts of tensors, nothing executed), and each
 * tensor's bytes are read from its storage member with positioned reads, like a safetensors file. Nested dicts
 * are flattened with dots; values that are not tensors (an epoch number…) are left out.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { ModelError } from '../errors.js';
import type { Backend } from '../runtime/backend.js';
import type { Tensor } from '../runtime/tensor.js';
import { type HostTensor, hostView } from './convert.js';
import { readTorchPickle, type TensorRecord } from './pickle.js';
import { type LoadOptions, type TensorSource, uploadHost } from './safetensors.js';
import { SAFETENSORS_DTYPE_BYTES, type TensorInfo } from './safetensors-format.js';
import { readZipEntries, type ZipEntry } from './zip.js';

interface Located {
  record: TensorRecord;
  /** The storage member's data. */
  entry: ZipEntry;
  contiguous: boolean;
}

function flatten(v: unknown, prefix: string, out: Map<string, TensorRecord>): void {
  if (v instanceof Map) {
    for (const [k, x] of v) if (typeof k === 'string') flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else if ((v as TensorRecord)?.kind === 'tensor') out.set(prefix, v as TensorRecord);
}

const isContiguous = (shape: readonly number[], stride: readonly number[]): boolean => {
  let want = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== want) return false;
    want *= shape[i];
  }
  return true;
};

/** The names torch.save checkpoints go by in a model directory, in the order they are looked for. */
export const TORCH_WEIGHT_FILES = ['model.pth', 'pytorch_model.bin'] as const;

/** The directory's torch.save checkpoint (the first of TORCH_WEIGHT_FILES present), or null when it has none. */
export async function openTorchWeights(dir: string): Promise<PthFile | null> {
  for (const name of TORCH_WEIGHT_FILES) {
    try {
      return await PthFile.open(`${dir}/${name}`);
    } catch (e) {
      if (!(e instanceof ModelError && /file not found/.test(e.message))) throw e;
    }
  }
  return null;
}

export class PthFile implements TensorSource, AsyncDisposable {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly tensors: ReadonlyMap<string, Located>,
  ) {}

  static async open(path: string): Promise<PthFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ModelError(
        code === 'ENOENT' ? `${path}: file not found` : `${path}: cannot open (${code ?? e})`,
        {
          cause: e,
        },
      );
    }
    try {
      const { size } = await handle.stat();
      const magic = new Uint8Array(4);
      await handle.read(magic, 0, 4, 0);
      if (magic[0] !== 0x50 || magic[1] !== 0x4b)
        throw new ModelError(
          `${path}: not a zip-format torch.save file (the legacy pre-1.6 format is not read: re-save it with a recent torch)`,
        );
      const entries = await readZipEntries(handle, size, path);
      const pkl = entries.find((e) => e.name.endsWith('/data.pkl') || e.name === 'data.pkl');
      if (!pkl) throw new ModelError(`${path}: no data.pkl in the archive (not a torch.save file)`);
      const root = pkl.name.slice(0, -'data.pkl'.length);
      const order = entries.find((e) => e.name === `${root}byteorder`);
      if (order && (await readRange(handle, order.start, order.size)).toString() !== 'little')
        throw new ModelError(`${path}: big-endian tensors are not supported`);
      const value = readTorchPickle(new Uint8Array(await readRange(handle, pkl.start, pkl.size)), path);
      const records = new Map<string, TensorRecord>();
      flatten(value, '', records);
      if (!records.size) throw new ModelError(`${path}: holds no tensors (expected a state dict)`);
      const byName = new Map(entries.map((e) => [e.name, e]));
      const tensors = new Map<string, Located>();
      for (const [name, record] of records) {
        const entry = byName.get(`${root}data/${record.storage.key}`);
        const s = record.storage;
        const bytes = SAFETENSORS_DTYPE_BYTES[s.dtype];
        const reach = record.shape.reduce(
          (n, d, i) => (d ? n + (d - 1) * record.stride[i] : n),
          record.offset,
        );
        const empty = record.shape.includes(0);
        if (!entry || entry.size < s.numel * bytes || (!empty && reach >= s.numel))
          throw new ModelError(`${path}: tensor "${name}" reaches past its storage ${s.key}`);
        tensors.set(name, { record, entry, contiguous: isContiguous(record.shape, record.stride) });
      }
      return new PthFile(path, handle, tensors);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  private located(name: string): Located {
    const t = this.tensors.get(name);
    if (!t) throw new ModelError(`${this.path}: no tensor named "${name}"`);
    return t;
  }

  /** Its dtype, shape and (for a contiguous tensor) its bytes' range in the file. */
  info(name: string): TensorInfo {
    const { record, entry } = this.located(name);
    const bytes = SAFETENSORS_DTYPE_BYTES[record.storage.dtype];
    const begin = entry.start + record.offset * bytes;
    const n = record.shape.reduce((a, d) => a * d, 1);
    return { name, dtype: record.storage.dtype, shape: record.shape, begin, end: begin + n * bytes };
  }

  async read(name: string): Promise<HostTensor> {
    const { record, entry, contiguous } = this.located(name);
    const { dtype } = record.storage;
    const size = SAFETENSORS_DTYPE_BYTES[dtype];
    const n = record.shape.reduce((a, d) => a * d, 1);
    const out = new Uint8Array(new ArrayBuffer(n * size));
    if (contiguous) {
      if (n) out.set(await readRange(this.handle, entry.start + record.offset * size, n * size));
    } else if (n) {
      // A strided view: read the storage span it covers and gather its elements in row-major order.
      const span = await readRange(this.handle, entry.start, record.storage.numel * size);
      const idx = new Array(record.shape.length).fill(0);
      for (let i = 0; i < n; i++) {
        let at = record.offset;
        for (let d = 0; d < idx.length; d++) at += idx[d] * record.stride[d];
        out.set(span.subarray(at * size, (at + 1) * size), i * size);
        for (let d = idx.length - 1; d >= 0; d--) {
          if (++idx[d] < record.shape[d]) break;
          idx[d] = 0;
        }
      }
    }
    return { dtype, shape: record.shape, data: hostView(dtype, out) };
  }

  async loadTensor(backend: Backend, name: string, opts: LoadOptions = {}): Promise<Tensor> {
    return uploadHost(backend, await this.read(name), opts, `${this.path}: tensor "${name}"`);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function readRange(h: FileHandle, start: number, n: number): Promise<Buffer> {
  const buf = Buffer.alloc(n);
  let done = 0;
  while (done < n) {
    const chunk = Math.min(n - done, 1 << 30);
    const { bytesRead } = await h.read(buf, done, chunk, start + done);
    if (!bytesRead) throw new ModelError('a torch.save file ends early');
    done += bytesRead;
  }
  return buf;
}
