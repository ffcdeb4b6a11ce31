/**
 * The TSTAR-MambaMia gradient fixture (test/fixtures/grads/mambamia.safetensors, tools/reference/grad_fixtures_mambamia.py)
 * loaded into the trainer's TSTAR on a backend, and valueAndGrad of its training loss there, set against
 * PyTorch's loss and gradients (the CPU test and the CUDA one share it).
 */
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import type { Backend } from '../../src/runtime/backend.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { autogradEngine as engine } from '../../src/train/engine.js';
import { teacherForced } from '../../src/train/model.js';
import { TstarTrainModel } from '../../src/train/tstar.js';
import { relErr } from '../helpers.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'grads', 'mambamia.safetensors');

export interface GradComparison {
  loss: number;
  refLoss: number;
  /** Every parameter's name with max |ours − PyTorch's| / max |PyTorch's|. */
  errors: [string, number][];
  /** Parameters whose PyTorch gradient is all zeros (the fixture must reach every one). */
  unreached: string[];
}

export async function compareMambaMiaGrads(backend: Backend): Promise<GradComparison> {
  const f = await SafetensorsFile.open(FIXTURE);
  const read = async (n: string) => (await f.read(n)).data;
  const weights = new Map<string, Tensor>();
  const refGrads = new Map<string, Float32Array>();
  for (const n of f.names()) {
    if (n.startsWith('weight.')) {
      const name = n.slice('weight.'.length);
      weights.set(name, ops.tensor(backend, (await read(n)) as Float32Array, f.info(n).shape, 'f32'));
      refGrads.set(name, (await read(`grad.${name}`)) as Float32Array);
    }
  }
  const model = TstarTrainModel.create(JSON.parse(f.metadata.config), weights, 2);
  const ex = {
    frames: (await read('frames')) as Uint8Array,
    count: 2,
    width: 56,
    height: 56,
    prompt: Array.from((await read('prompt')) as Int32Array),
    answer: Array.from((await read('answer')) as Int32Array),
    group: '',
  };
  const refLoss = ((await read('loss')) as Float32Array)[0];
  await f.close();
  const names = [...weights.keys()];
  const targets = ops.tensor(
    backend,
    teacherForced(ex).targets,
    [ex.prompt.length + ex.answer.length - 1],
    'i32',
  );
  try {
    const { value, grads } = engine.valueAndGrad(
      () => {
        using fwd = model.forward();
        return engine.crossEntropy(fwd.logits(ex), targets, { ignoreIndex: -100 });
      },
      names.map((n) => weights.get(n)!),
    );
    const errors: [string, number][] = [];
    const unreached: string[] = [];
    for (const [i, n] of names.entries()) {
      const want = refGrads.get(n)!;
      if (!want.some((v) => v !== 0)) unreached.push(n);
      errors.push([n, relErr(Float32Array.from(await grads[i].data()), want)]);
      grads[i].dispose();
    }
    if (model.untrainable.size) throw new Error('TSTAR reads no weight as a number: all train');
    return { loss: value, refLoss, errors, unreached };
  } finally {
    targets.dispose();
    model[Symbol.dispose]();
  }
}
