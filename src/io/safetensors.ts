/**
 * Reading safetensors files one tensor at a time: the header is parsed once, then each tensor's byte
 * range is read with positioned reads, so a 22 GB checkpoint never passes through JS memory whole.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { ModelError } from '../errors.js';
import type { Backend } from '../runtime/backend.js';
import type { DType } from '../runtime/dtype.js';
import { empty } from '../runtime/ops.js';
import type { Tensor } from '../runtime/tensor.js';
import { defaultRuntimeDType, type HostTensor, hostView, toRuntime } from './convert.js';
import { headerLength, parseHeader, type SafetensorsHeader, type TensorInfo } from './safetensors-format.js';

export interface LoadOptions {
  /** Runtime dtype to load as; default keeps the stored type (F32→f32, BF16→bf16, I64→i32, BOOL→u8). */
  dtype?: DType;
}

/** Anything tensors can be loaded from by name: one file or a whole (sharded) checkpoint. */
export interface TensorSource {
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  read(name: string): Promise<HostTensor>;
  loadTensor(backend: Backend, name: string, opts?: LoadOptions): Promise<Tensor>;
}

/** One positioned read is capped below 2 GiB by the OS; larger tensors are read in pieces. */
const READ_CHUNK = 1 << 30;

export class SafetensorsFile implements TensorSource, AsyncDisposable {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly header: SafetensorsHeader,
    readonly size: number,
  ) {}

  /** Opens `path` and validates its header against the file size. */
  static async open(path: string): Promise<SafetensorsFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ModelError(
        code === 'ENOENT' ? `${path}: safetensors file not found` : `${path}: cannot open (${code ?? e})`,
        { cause: e },
      );
    }
    try {
      const { size } = await handle.stat();
      const prefix = new Uint8Array(8);
      if (size >= 8) await readFully(handle, prefix, 0, path);
      const n = headerLength(prefix, size, path);
      const json = new Uint8Array(n);
      await readFully(handle, json, 8, path);
      return new SafetensorsFile(path, handle, parseHeader(json, size, path), size);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.header.tensors.get(name);
    if (!t) throw new ModelError(`${this.path}: no tensor named "${name}"`);
    return t;
  }

  /** The tensor's elements on the host, in its stored dtype. */
  async read(name: string): Promise<HostTensor> {
    const t = this.info(name);
    // A fresh ArrayBuffer starts 8-byte aligned, so every typed view of it is legal.
    const bytes = new Uint8Array(new ArrayBuffer(t.end - t.begin));
    await readFully(this.handle, bytes, t.begin, `${this.path}: tensor "${name}"`);
    return { dtype: t.dtype, shape: t.shape, data: hostView(t.dtype, bytes) };
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

/** Converts a host tensor to the requested runtime dtype and uploads it to a new backend tensor. */
export function uploadHost(backend: Backend, host: HostTensor, opts: LoadOptions, where: string): Tensor {
  const dtype = opts.dtype ?? defaultRuntimeDType(host.dtype);
  const raw = toRuntime(host, dtype, where);
  const t = empty(backend, host.shape, dtype);
  try {
    backend.upload(t, raw);
  } catch (e) {
    t.dispose();
    throw e;
  }
  return t;
}

async function readFully(
  handle: FileHandle,
  into: Uint8Array,
  position: number,
  what: string,
): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const len = Math.min(READ_CHUNK, into.length - done);
    const { bytesRead } = await handle.read(into, done, len, position + done);
    if (bytesRead === 0)
      throw new ModelError(
        `${what}: unexpected end of file at byte ${position + done} (the file is truncated; download it again)`,
      );
    done += bytesRead;
  }
}
