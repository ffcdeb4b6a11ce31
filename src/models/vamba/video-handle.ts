/**
 * Encode once, ask many: everything a question needs from a video is each layer's cross-attention K/V
 * (research/vamba.md §2.7). A handle holds them, and can be saved to disk (safetensors + metadata) and loaded
 * back. It is keyed by the video's content hash and every setting that changes the K/V (model identity,
 * frames, sampling, sizes, dtype): loading with a different key is refused.
 */
import { InputError } from '../../errors.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import { saveSafetensors } from '../../io/safetensors-write.js';
import type { CrossKV } from '../../nn/cross-attention.js';
import type { Backend } from '../../runtime/backend.js';
import { disposeAll } from '../../runtime/scope.js';
import type { EncodedVideo } from '../family.js';

/** What the K/V depend on. Values are compared as strings; extra fields are allowed and compared too. */
export interface VideoKey {
  /** Model identity (Vamba.modelId: a digest of config.json and the checkpoint's tensor index). */
  model: string;
  /** Content hash of the video (e.g. sha256 of the file), or of the pixels when no file is known. */
  video: string;
  /** Frame selection, e.g. "uniform:512" or "indices:<digest>". */
  sampling: string;
  /** Frame size rule and result, e.g. "vamba 256/480 → 476x280". */
  size: string;
  /** Runtime dtype of the K/V. */
  dtype: string;
  [field: string]: string;
}

const FORMAT = 'longshot-vamba-video/1';

/** The fields whose values differ between two keys (absent on one side counts). */
export function keyDifferences(a: VideoKey, b: VideoKey): string[] {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return names
    .filter((n) => a[n] !== b[n])
    .map((n) => `${n}: ${JSON.stringify(a[n] ?? null)} ≠ ${JSON.stringify(b[n] ?? null)}`);
}

export class VambaVideoHandle implements Disposable {
  constructor(
    /** One K/V pair per decoder layer, [1, tokens, kvHeads, headDim] each. */
    readonly kvs: CrossKV[],
    readonly key: VideoKey,
    /** Merged video-token grid [t, h, w]. */
    readonly grid: readonly [number, number, number],
    /** The metadata a loaded handle's file carried (what `save` was given besides the K/V's own). */
    readonly metadata: Readonly<Record<string, string>> = {},
  ) {}

  get tokens(): number {
    return this.kvs[0]?.k.shape[1] ?? 0;
  }

  get bytes(): number {
    return this.kvs.reduce((n, kv) => n + kv.k.bytes + kv.v.bytes, 0);
  }

  /** Writes the K/V (streamed one tensor at a time) with the key, and `extra`, in the metadata. */
  async save(path: string, extra: Record<string, string> = {}): Promise<void> {
    const entries = this.kvs.flatMap((kv, i) => [
      [`layers.${i}.k`, kv.k] as const,
      [`layers.${i}.v`, kv.v] as const,
    ]);
    await saveSafetensors(path, entries, {
      metadata: {
        ...extra,
        format: FORMAT,
        key: JSON.stringify(this.key),
        grid: JSON.stringify(this.grid),
        layers: String(this.kvs.length),
      },
    });
  }

  /**
   * Loads a saved handle onto `backend` after checking that it was made with exactly `expected`'s settings
   * (or those `expected` makes of the saved key, for a caller that checks some fields itself); a different key
   * (another video, model, frame count, size or dtype) is an InputError naming the fields.
   */
  static async load(
    path: string,
    backend: Backend,
    expected: VideoKey | ((saved: VideoKey) => VideoKey),
  ): Promise<VambaVideoHandle> {
    const f = await SafetensorsFile.open(path);
    try {
      const meta = f.metadata;
      if (meta.format !== FORMAT)
        throw new InputError(
          `${path} is not a saved Vamba video (format ${JSON.stringify(meta.format ?? null)}, expected "${FORMAT}")`,
        );
      const key = JSON.parse(meta.key) as VideoKey;
      const diff = keyDifferences(typeof expected === 'function' ? expected(key) : expected, key);
      if (diff.length)
        throw new InputError(
          `${path} was encoded with other settings, so it cannot answer for this video: ${diff.join('; ')}. Encode the video again (or pass the settings it was made with).`,
        );
      const layers = Number(meta.layers);
      const kvs: CrossKV[] = [];
      try {
        for (let i = 0; i < layers; i++)
          kvs.push({
            k: await f.loadTensor(backend, `layers.${i}.k`, { dtype: key.dtype as never }),
            v: await f.loadTensor(backend, `layers.${i}.v`, { dtype: key.dtype as never }),
          });
      } catch (e) {
        disposeAll(kvs);
        throw e;
      }
      const { format: _f, key: _k, grid, layers: _l, ...extra } = meta;
      return new VambaVideoHandle(kvs, key, JSON.parse(grid), extra);
    } finally {
      await f.close();
    }
  }

  [Symbol.dispose](): void {
    disposeAll(this.kvs);
  }
}

/** The runner's per-video state: a handle. */
export interface VambaVideo extends EncodedVideo {
  handle: VambaVideoHandle;
}

export function videoOf(handle: VambaVideoHandle): VambaVideo {
  return { handle, tokens: handle.tokens, bytes: handle.bytes, dispose: () => handle[Symbol.dispose]() };
}
