/**
 * The whole-model gradient fixtures of test/fixtures/grads/ (tools/reference/grad_fixtures*.py: a tiny model's
 * weights as `weight.<name>`, PyTorch's gradients as `grad.<name>`, the config in the metadata, one example's
 * prompt, answer and loss), loaded for the trainer's models, and the checks the fixture tests share.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import type { Backend } from '../../src/runtime/backend.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import type { Example } from '../../src/train/data.js';
import { autogradEngine as engine } from '../../src/train/engine.js';
import { IGNORE, type SyncTrainForward, teacherForced } from '../../src/train/model.js';

export interface GradFixture {
  // biome-ignore lint/suspicious/noExplicitAny: the model's config JSON, as the trainer's models take it
  config: any;
  /** The weights on the backend, by parameter name. */
  weights: Map<string, Tensor>;
  /** PyTorch's gradient of each weight. */
  refGrads: Map<string, Float32Array>;
  refLoss: number;
  prompt: number[];
  answer: number[];
  /** The recorded frames, where the fixture holds them. */
  frames: Uint8Array | null;
}

/** Reads test/fixtures/grads/`file` with its weights as f32 tensors on `backend`. */
export async function loadGradFixture(file: string, backend: Backend): Promise<GradFixture> {
  const f = await SafetensorsFile.open(join(import.meta.dirname, '..', 'fixtures', 'grads', file));
  const read = async (n: string) => (await f.read(n)).data;
  const weights = new Map<string, Tensor>();
  const refGrads = new Map<string, Float32Array>();
  for (const n of f.names())
    if (n.startsWith('weight.')) {
      const name = n.slice('weight.'.length);
      weights.set(name, ops.tensor(backend, (await read(n)) as Float32Array, f.info(n).shape, 'f32'));
      refGrads.set(name, (await read(`grad.${name}`)) as Float32Array);
    }
  const fixture: GradFixture = {
    config: JSON.parse(f.metadata.config),
    weights,
    refGrads,
    refLoss: ((await read('loss')) as Float32Array)[0],
    prompt: Array.from((await read('prompt')) as Int32Array),
    answer: Array.from((await read('answer')) as Int32Array),
    frames: f.has('frames') ? ((await read('frames')) as Uint8Array) : null,
  };
  await f.close();
  return fixture;
}

/** The fixture's example: two side×side frames (its recorded ones unless given) with its prompt and answer. */
export function fixtureExample(fx: GradFixture, frames = fx.frames!, side = 56): Example {
  return { frames, count: 2, width: side, height: side, prompt: fx.prompt, answer: fx.answer, group: '' };
}

/**
 * valueAndGrad of `ex`'s answer-token cross-entropy under `model` with respect to `params`: the loss and each
 * parameter's gradient, read back to the host.
 */
export async function answerLossAndGrads(
  model: { forward(): SyncTrainForward },
  ex: Example,
  params: readonly Tensor[],
  backend: Backend,
): Promise<{ value: number; grads: Float32Array[] }> {
  const { targets } = teacherForced(ex);
  using t = ops.tensor(backend, targets, [targets.length], 'i32');
  const { value, grads } = engine.valueAndGrad(() => {
    using fwd = model.forward();
    return engine.crossEntropy(fwd.logits(ex), t, { ignoreIndex: IGNORE });
  }, params);
  const host: Float32Array[] = [];
  for (const g of grads) {
    host.push(Float32Array.from(await g.data()));
    g.dispose();
  }
  return { value, grads: host };
}

/**
 * Asserts max |got − want| ≤ 1e-3·max |want| + 1e-6 for the gradient of `name` (f32 sums that cancel: judged
 * against the tensor's largest); returns max |want| (0: the fixture's gradient is zero).
 */
export function assertGradClose(name: string, got: Float32Array, want: Float32Array): number {
  let scale = 0;
  let worst = 0;
  for (let j = 0; j < want.length; j++) {
    scale = Math.max(scale, Math.abs(want[j]));
    worst = Math.max(worst, Math.abs(got[j] - want[j]));
  }
  assert.ok(worst <= 1e-3 * scale + 1e-6, `${name}: largest difference ${worst} (largest gradient ${scale})`);
  return scale;
}
