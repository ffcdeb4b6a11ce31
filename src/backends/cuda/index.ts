import { DeviceUnavailableError, registerBackend } from '../../runtime/device.js';

/**
 * Registers the CUDA backend. Nothing native is touched until `getBackend('cuda')`: then the addon is loaded,
 * the GPU opened and cuBLASLt found, and any failure becomes a DeviceUnavailableError that says what to do.
 */
registerBackend('cuda', async () => {
  const { addonPath, loadAddon } = await import('./addon.js');
  const path = addonPath();
  if (!path)
    throw new DeviceUnavailableError(
      'cuda: the CUDA addon is not built (native/cuda/build/longshot_cuda.node is missing). Install the CUDA ' +
        'toolkit (nvcc) and run "npm run build:native", or use --device cpu.',
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
});
