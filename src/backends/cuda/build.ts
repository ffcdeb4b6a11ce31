/**
 * The CUDA addon where `npm install` skipped it: install builds it only where an NVIDIA driver is present
 * (scripts/build-native.mjs), so a machine that gets a GPU later, or a `--device cuda` on one whose install
 * predates it, builds it here on first use. The driver checks are the install script's, read from
 * native/cuda/driver-probes.json: paths that exist only where a driver is installed.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { DeviceUnavailableError } from '../../runtime/device.js';
import { packageFile } from './addon.js';

/** Whether this machine has an NVIDIA driver (nothing native is loaded to find out). */
export function gpuDriverPresent(): boolean {
  const probes = packageFile('native/cuda/driver-probes.json');
  return probes !== null && (JSON.parse(readFileSync(probes, 'utf8')) as string[]).some((p) => existsSync(p));
}

/** Runs `npm run build:native`'s script, its output on stderr; rejects with what to do when it fails. */
export async function buildAddon(): Promise<void> {
  const script = packageFile('scripts/build-native.mjs');
  if (!script)
    throw new DeviceUnavailableError(
      'cuda: the CUDA addon is not built and scripts/build-native.mjs is missing; reinstall longshot, or use --device cpu.',
    );
  process.stderr.write('longshot: building the CUDA addon (first use, ~4 min)…\n');
  const code = await new Promise<number | null>((resolve, reject) =>
    spawn(process.execPath, [script], { stdio: ['ignore', 2, 2] })
      .once('error', reject)
      .once('close', resolve),
  );
  if (code !== 0)
    throw new DeviceUnavailableError(
      `cuda: building the CUDA addon failed (exit ${code}, output above); fix that and run "npm run build:native", or use --device cpu.`,
    );
}
