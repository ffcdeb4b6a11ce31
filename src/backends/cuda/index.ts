import { DeviceUnavailableError, registerBackend } from '../../runtime/device.js';
import { addonPath, loadAddon } from './addon.js';
import { buildAddon, gpuDriverPresent } from './build.js';

/**
 * Registers the CUDA backend. Nothing native is touched until `getBackend('cuda')`: then the addon is loaded
 * (built first where a driver is present but the addon is not), the GPU opened and cuBLASLt found, and any
 * failure becomes a DeviceUnavailableError that says what to do. `auto` picks it where a driver is present.
 */
registerBackend(
  'cuda',
  async () => {
    let path = addonPath();
    if (!path && gpuDriverPresent()) {
      await buildAddon();
      path = addonPath();
    }
    if (!path)
      throw new DeviceUnavailableError(
        gpuDriverPresent()
          ? 'cuda: the CUDA addon could not be built: nvcc was not found (output above). Install the CUDA ' +
              'toolkit and run "npm run build:native", or use --device cpu.'
          : 'cuda: no NVIDIA driver found (nvidia-smi, /proc/driver/nvidia) and the CUDA addon is not built. On a ' +
              'GPU machine run "npm run build:native", or use --device cpu.',
      );
    let addon: Awaited<ReturnType<typeof loadAddon>>;
    let device: ReturnType<typeof addon.init>;
    try {
      addon = loadAddon(path);
      device = addon.init();
    } catch (e) {
      throw new DeviceUnavailableError(
        `cuda: ${(e as Error).message}. Check that an NVIDIA GPU and driver are present (nvidia-smi), or use --device cpu.`,
        { cause: e },
      );
    }
    const { CudaBackend } = await import('./backend.js');
    return new CudaBackend(addon, device);
  },
  gpuDriverPresent,
);
