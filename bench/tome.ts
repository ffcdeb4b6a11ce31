/**
 * ToMe's cost per frame (TimeViper's projector: 729 SigLIP tokens of 1152 channels → 16 per frame, 6 rounds):
 * the whole merge (matching rounds on the device, host sort, the final bag means), on the CPU backend by
 * default or on CUDA, f32 or bf16 features.
 *
 *   node --import tsx bench/tome.ts                         # 64 frames on the CPU backend, f32
 *   node --import tsx bench/tome.ts --device cuda --frames 256 --dtype bf16
 *
 * Prints one line: `tome <device> <dtype> <frames>×<tokens>×<channels>: <ms> ms per frame (<s> s in all)`.
 */
import { parseArgs } from 'node:util';
import '../src/backends/index.js';
import { tomeMerge } from '../src/nn/tome.js';
import { getBackend } from '../src/runtime/device.js';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import { Random } from '../src/util/random.js';

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    dtype: { type: 'string', default: 'f32' },
    frames: { type: 'string', default: '64' },
    tokens: { type: 'string', default: '729' },
    channels: { type: 'string', default: '1152' },
    repeats: { type: 'string', default: '2' },
  },
});
const [frames, tokens, channels, repeats] = [
  values.frames,
  values.tokens,
  values.channels,
  values.repeats,
].map(Number);
const backend = await getBackend(values.device as 'cpu' | 'cuda');
const rng = new Random(7);
const xs = Float32Array.from({ length: frames * tokens * channels }, () => rng.uniform(-1, 1));
using x32 = ops.tensor(backend, xs, [frames, tokens, channels]);
using x = ops.cast(x32, values.dtype as DType);
(await tomeMerge(x)).dispose(); // warm-up (kernels, allocator)
let best = Number.POSITIVE_INFINITY;
for (let i = 0; i < repeats; i++) {
  const t0 = performance.now();
  using y = await tomeMerge(x);
  await y.data();
  best = Math.min(best, (performance.now() - t0) / 1000);
}
console.log(
  `tome ${values.device} ${values.dtype} ${frames}×${tokens}×${channels}: ${((best / frames) * 1000).toFixed(2)} ms per frame (${best.toFixed(2)} s in all)`,
);
