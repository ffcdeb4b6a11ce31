/**
 * Full-size models with random weights for the benchmarks (bench/long_video.ts, bench/live_video.ts): the
 * weights are made on the device (RandomWeights) and loaded through the same loaders and modules as a real
 * checkpoint; Vamba's Mamba parameters (A_log, dt_bias, D, conv1d) and α get their own initialisers.
 */
import { RandomWeights } from '../src/io/random-weights.js';
import type { Qwen2VLConfig } from '../src/models/qwen2vl/config.js';
import { Qwen2VL } from '../src/models/qwen2vl/model.js';
import { loadQwen2VLParams, qwen2vlSpecs } from '../src/models/qwen2vl/weights.js';
import { MambaInit } from '../src/models/vamba/convert.js';
import { Vamba } from '../src/models/vamba/model.js';
import { loadVambaParams, vambaSpecs } from '../src/models/vamba/weights.js';
import type { Backend } from '../src/runtime/backend.js';
import type { DType } from '../src/runtime/dtype.js';

/** A Vamba with random weights (model id `random:vamba`). */
export async function randomVamba(config: Qwen2VLConfig, backend: Backend, dtype: DType): Promise<Vamba> {
  const init = new MambaInit(config, 0, 0.5);
  const special = (name: string, shape: readonly number[]) =>
    /layers\.\d+\.(alpha|vision_mixer\.mixer\.(D|A_log|dt_bias|conv1d\.weight|conv1d\.bias))$/.test(name)
      ? (init.make(name, shape, 'F32').data as Float32Array)
      : null;
  const source = new RandomWeights(vambaSpecs(config), { seed: 1, special });
  const params = await loadVambaParams(source, config, backend, dtype, 'random');
  source[Symbol.dispose]();
  return Vamba.fromParams(config, params, backend, dtype, 'random:vamba');
}

/** A Qwen2-VL with random weights. */
export async function randomQwen2VL(config: Qwen2VLConfig, backend: Backend, dtype: DType): Promise<Qwen2VL> {
  const source = new RandomWeights(qwen2vlSpecs(config), { seed: 1 });
  const params = await loadQwen2VLParams(source, config, backend, dtype, 'random');
  source[Symbol.dispose]();
  return Qwen2VL.fromParams(config, params, backend, dtype);
}
