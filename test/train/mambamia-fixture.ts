/**
 * The TSTAR-MambaMia gradient fixture (test/fixtures/grads/mambamia.safetensors, tools/reference/grad_fixtures_mambamia.py)
 * loaded into the trainer's TSTAR on a backend, and valueAndGrad of its training loss there, set against
 * PyTorch's loss and gradients (the CPU test and the CUDA one share it).
 */
import type { Backend } from '../../src/runtime/backend.js';
import { TstarTrainModel } from '../../src/train/tstar.js';
import { relErr } from '../helpers.js';
import { answerLossAndGrads, fixtureExample, loadGradFixture } from './grad-fixture.js';

export interface GradComparison {
  loss: number;
  refLoss: number;
  /** Every parameter's name with max |ours − PyTorch's| / max |PyTorch's|. */
  errors: [string, number][];
  /** Parameters whose PyTorch gradient is all zeros (the fixture must reach every one). */
  unreached: string[];
}

export async function compareMambaMiaGrads(backend: Backend): Promise<GradComparison> {
  const fx = await loadGradFixture('mambamia.safetensors', backend);
  using model = TstarTrainModel.create(fx.config, fx.weights, 2);
  const names = [...fx.weights.keys()];
  const { value, grads } = await answerLossAndGrads(
    model,
    fixtureExample(fx),
    names.map((n) => fx.weights.get(n)!),
    backend,
  );
  const errors: [string, number][] = [];
  const unreached: string[] = [];
  for (const [i, n] of names.entries()) {
    const want = fx.refGrads.get(n)!;
    if (!want.some((v) => v !== 0)) unreached.push(n);
    errors.push([n, relErr(grads[i], want)]);
  }
  if (model.untrainable.size) throw new Error('TSTAR reads no weight as a number: all train');
  return { loss: value, refLoss: fx.refLoss, errors, unreached };
}
