/**
 * A host-memory stand-in for a runtime backend with only the memory methods (allocate, upload, download):
 * enough to test loading tensors without depending on a compute backend.
 */
import type { Backend, Storage } from '../../src/runtime/backend.js';
import { BYTES_PER_ELEMENT, type RawArray, rawArrayFor } from '../../src/runtime/dtype.js';
import type { Tensor } from '../../src/runtime/tensor.js';

interface HostStorage extends Storage {
  data: ArrayBuffer;
}

export function hostBackend(): Backend & { live: number } {
  const b = {
    name: 'cpu',
    live: 0,
    allocate(bytes: number): HostStorage {
      b.live++;
      return { bytes, data: new ArrayBuffer(bytes) };
    },
    release() {
      b.live--;
    },
    upload(dst: Tensor, src: RawArray) {
      const s = dst.storage as HostStorage;
      const view = rawArrayFor(dst.dtype, s.data, dst.offset * BYTES_PER_ELEMENT[dst.dtype], dst.size);
      if (src.length !== dst.size) throw new Error(`upload: ${src.length} elements for ${dst.size}`);
      view.set(src as never);
    },
    async download(src: Tensor): Promise<RawArray> {
      const s = src.storage as HostStorage;
      const bytes = BYTES_PER_ELEMENT[src.dtype];
      const copy = s.data.slice(src.offset * bytes, (src.offset + src.size) * bytes);
      return rawArrayFor(src.dtype, copy, 0, src.size);
    },
  };
  return b as unknown as Backend & { live: number };
}
