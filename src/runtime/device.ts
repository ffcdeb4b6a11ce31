import { ModelError } from '../errors.js';
import type { Backend, DeviceName } from './backend.js';

/**
 * Device selection. Backends register a loader, and accelerators a cheap presence check (no native code
 * loaded) that `auto` consults; `getBackend` loads each at most once. The CUDA backend is loaded lazily so
 * that machines without the native addon never touch it.
 */
type Loader = () => Promise<Backend>;

const loaders = new Map<DeviceName, Loader>();
/** Accelerators in the order `auto` prefers them, with their presence check. */
const accelerators = new Map<DeviceName, () => boolean>();
const loaded = new Map<DeviceName, Promise<Backend>>();

export function registerBackend(name: DeviceName, loader: Loader, present?: () => boolean): void {
  loaders.set(name, loader);
  if (present) accelerators.set(name, present);
  else accelerators.delete(name);
  loaded.delete(name);
}

/**
 * Raised when a device is asked for that this machine or build cannot provide; says what to do. A model
 * error (exit 4), as when the facade reports it.
 */
export class DeviceUnavailableError extends ModelError {
  override name = 'DeviceUnavailableError';
}

/** The device `auto` stands for: the first registered accelerator whose hardware is present, else the cpu. */
export function resolveDevice(name: DeviceName | 'auto'): DeviceName {
  if (name !== 'auto') return name;
  for (const [device, present] of accelerators) if (present()) return device;
  return 'cpu';
}

/**
 * The backend for a device, loaded once. `auto` takes the device resolveDevice picks; when that accelerator
 * is present but fails to load (driver or addon trouble), it warns once and uses the cpu.
 */
export async function getBackend(name: DeviceName | 'auto' = 'cpu'): Promise<Backend> {
  if (name === 'auto') {
    const device = resolveDevice('auto');
    if (device === 'cpu') return getBackend('cpu');
    try {
      return await getBackend(device);
    } catch (e) {
      process.emitWarning(`${(e as Error).message} — --device auto uses the cpu`, {
        code: 'LONGSHOT_DEVICE_AUTO',
      });
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
