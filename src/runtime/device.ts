import type { Backend, DeviceName } from './backend.js';

/**
 * Device selection. Backends register a loader; `getBackend` loads each at most once. The CUDA backend is
 * loaded lazily so that machines without the native addon never touch it.
 */
type Loader = () => Promise<Backend>;

const loaders = new Map<DeviceName, Loader>();
const loaded = new Map<DeviceName, Promise<Backend>>();

export function registerBackend(name: DeviceName, loader: Loader): void {
  loaders.set(name, loader);
}

/** Raised when a device is asked for that this machine or build cannot provide; says what to do. */
export class DeviceUnavailableError extends Error {
  override name = 'DeviceUnavailableError';
}

export async function getBackend(name: DeviceName | 'auto' = 'cpu'): Promise<Backend> {
  if (name === 'auto') {
    try {
      return await getBackend('cuda');
    } catch {
      return getBackend('cpu');
    }
  }
  let p = loaded.get(name);
  if (!p) {
    const loader = loaders.get(name);
    if (!loader)
      throw new DeviceUnavailableError(`unknown device '${name}' (known: ${[...loaders.keys()].join(', ')})`);
    p = loader();
    loaded.set(name, p);
    p.catch(() => loaded.delete(name));
  }
  return p;
}

export const knownDevices = (): DeviceName[] => [...loaders.keys()];
