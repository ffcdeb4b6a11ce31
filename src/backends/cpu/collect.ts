/**
 * Tensors live in SharedArrayBuffers, whose memory returns to the system only once every isolate that holds
 * a view of one has garbage-collected that view. The views are small objects, so neither the main thread nor
 * the workers feel the pressure of hundreds of MB of dead tensors and collect late: a 1024-frame video on two
 * threads held 1 GB of RSS for 0.3 GB of live tensors. The workers hold most of them (a task's views die
 * with it, but their tiny heaps never fill), so each worker collects after every so many bytes it has viewed.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (o?: { type: 'major' | 'minor' }) => void;

/** A counter that runs a collection of `type` each time `every` more bytes have been dropped. */
export function collector(type: 'major' | 'minor', every: number): (bytes: number) => void {
  let dropped = 0;
  return (bytes) => {
    dropped += bytes;
    if (dropped < every) return;
    dropped = 0;
    gc({ type });
  };
}
