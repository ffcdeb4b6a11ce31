/**
 * "Will it fit?" before starting: a model's memory estimate against the device's memory, so a request that
 * cannot fit fails at once with the numbers instead of minutes later in the middle of a video.
 */
import { totalmem } from 'node:os';
import { OutOfMemoryError } from '../errors.js';
import type { Backend } from '../runtime/backend.js';

const GiB = 2 ** 30;
/** Kept free for the CUDA context, cuBLASLt's workspace and the allocator's rounding. */
const RESERVE = 1.5 * GiB;

/** Bytes of memory the backend's device has (GPU memory, or the host's RAM for the CPU backend). */
export function deviceMemoryBytes(backend: Backend): number {
  const device = (backend as { device?: { totalMemory?: number } }).device;
  return device?.totalMemory ?? totalmem();
}

/**
 * The device memory a server may use in all (serve/ledger.ts): 92% of the device's, the rest for the CUDA
 * context, cuBLASLt's workspace and the caching allocator's rounding and fragmentation.
 */
export const defaultMemoryBudget = (backend: Backend): number =>
  Math.floor(0.92 * deviceMemoryBytes(backend));

export const gib = (bytes: number): string => `${(bytes / GiB).toFixed(1)} GiB`;

/**
 * Throws an OutOfMemoryError when `needBytes` (a whole-request estimate) exceeds what the device can give;
 * `what` names the request and `parts` lists the estimate's terms for the message.
 */
export function assertFits(
  backend: Backend,
  needBytes: number,
  what: string,
  parts: Record<string, number>,
  capacity = deviceMemoryBytes(backend),
): void {
  const usable = capacity - RESERVE;
  if (needBytes <= usable) return;
  const detail = Object.entries(parts)
    .map(([k, v]) => `${k} ${gib(v)}`)
    .join(', ');
  throw new OutOfMemoryError(
    `${what} needs about ${gib(needBytes)} (${detail}) but ${backend.name} has ${gib(usable)} usable of ${gib(capacity)}; use fewer frames or smaller frames`,
  );
}
