/**
 * Nemotron-H against transformers' NemotronHForCausalLM (its torch fallback, f32): the fixtures made by
 * tools/reference/nemotron_h_fixtures.py, tiny random checkpoints in the published layout. Per case: the
 * checkpoint loads with our loader and counts what transformers counts; one forward's logits, the first Mamba-2
 * mixer alone, greedy tokens and their step logits; the prompt in the manifest's pieces then token-by-token
 * decode against the single forward's rows (transformers' own cache cannot take pieces, see
 * docs/research-nemotron-h.md §1).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { layerCensus, readNemotronHConfig } from '../../src/models/nemotron_h/config.js';
import { NemotronHForCausalLM } from '../../src/models/nemotron_h/model.js';
import { nemotronHParamCount } from '../../src/models/nemotron_h/weights.js';
import { Mamba2 } from '../../src/nn/mamba2.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { relErr } from '../helpers.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'nemotron_h');
const TOL = 1e-5;
const be = cpuBackend();

interface CaseManifest {
  spec: { pattern: string; L: number };
  prefill_pieces: number[];
  greedy_tokens: number[];
  num_parameters: number;
  layers_block_type: string[];
  mixer_layer: number;
}
const manifest = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as {
  greedy_steps: number;
  cases: Record<string, CaseManifest>;
};

async function reference(name: string) {
  const f = await SafetensorsFile.open(join(DIR, name, 'reference.safetensors'));
  try {
    const get = async (n: string) => {
      const t = await f.loadTensor(be, n, n.endsWith('ids') || n.endsWith('tokens') ? {} : { dtype: 'f32' });
      try {
        return { data: Float64Array.from(await t.data()), shape: t.shape };
      } finally {
        t.dispose();
      }
    };
    return {
      inputIds: Array.from((await get('input_ids')).data),
      fullIds: Array.from((await get('full_ids')).data),
      logits: (await get('logits')).data,
      greedyTokens: Array.from((await get('greedy_tokens')).data),
      stepLogits: (await get('step_logits')).data,
      mixerInput: await get('mixer_input'),
      mixerOutput: (await get('mixer_output')).data,
      vocab: f.info('logits').shape[1],
    };
  } finally {
    await f.close();
  }
}

async function rows(t: Tensor): Promise<Float64Array> {
  try {
    return Float64Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

const KIND: Record<string, 'mamba' | 'attention' | 'mlp'> = {
  mamba: 'mamba',
  linear_attention: 'mamba',
  attention: 'attention',
  full_attention: 'attention',
  mlp: 'mlp',
};

describe('Nemotron-H vs transformers (fixtures)', () => {
  const names = Object.keys(manifest.cases);
  it('has the five cases of the fixture script', () => {
    assert.deepEqual([...names].sort(), [
      'attn-first',
      'mamba-run',
      'mlp-first-g1',
      'mlp-stretch',
      'nano-like',
    ]);
  });

  for (const name of names)
    describe(name, () => {
      const m = manifest.cases[name];
      const load = () => NemotronHForCausalLM.load(join(DIR, name), { backend: be });

      it('reads the stack and the parameter count transformers built', async () => {
        const config = await readNemotronHConfig(join(DIR, name));
        assert.equal(config.hybrid_override_pattern, m.spec.pattern);
        const census = { mamba: 0, attention: 0, mlp: 0 };
        for (const t of m.layers_block_type) census[KIND[t]]++;
        assert.deepEqual(layerCensus(config), census);
        assert.equal(nemotronHParamCount(config), m.num_parameters);
      });

      it(`one forward's logits within ${TOL}`, async () => {
        using model = await load();
        const ref = await reference(name);
        const e = relErr(await rows(model.forward(ref.fullIds)), ref.logits);
        assert.ok(e <= TOL, `relative error ${e.toExponential(2)}`);
      });

      it(`layer ${m.mixer_layer}'s Mamba-2 mixer alone within ${TOL}`, async () => {
        using model = await load();
        const ref = await reference(name);
        const mixer = model.backbone.layers[m.mixer_layer].mixer;
        assert.ok(mixer instanceof Mamba2);
        using u = ops.tensor(be, Float32Array.from(ref.mixerInput.data), ref.mixerInput.shape, 'f32');
        const e = relErr(await rows(mixer.forward(u)), ref.mixerOutput);
        assert.ok(e <= TOL, `relative error ${e.toExponential(2)}`);
      });

      it('greedy decoding gives transformers’ tokens and step logits', async () => {
        using model = await load();
        const ref = await reference(name);
        assert.deepEqual(ref.greedyTokens, m.greedy_tokens);
        using session = model.session();
        const tokens: number[] = [];
        const steps: Float64Array[] = [];
        let logits = session.prefill(ref.inputIds);
        for (let i = 0; i < manifest.greedy_steps; i++) {
          const row = await rows(logits);
          steps.push(row);
          const next = row.indexOf(Math.max(...row));
          tokens.push(next);
          logits = session.step(next);
        }
        logits.dispose();
        assert.deepEqual(tokens, ref.greedyTokens);
        steps.forEach((s, i) => {
          const e = relErr(s, ref.stepLogits.subarray(i * ref.vocab, (i + 1) * ref.vocab));
          assert.ok(e <= TOL, `step ${i}: relative error ${e.toExponential(2)}`);
        });
      });

      it(`the prompt in pieces ${m.prefill_pieces.join('+')}, then single tokens, gives the single forward's rows`, async () => {
        using model = await load();
        const ref = await reference(name);
        using cache = model.newCache(4);
        const got: number[] = [];
        let at = 0;
        const decode = ref.fullIds.length - ref.inputIds.length - 1;
        for (const n of [...m.prefill_pieces, ...Array(decode).fill(1)]) {
          got.push(...(await rows(model.forward(ref.fullIds.slice(at, at + n), cache))));
          at += n;
        }
        const want = ref.logits.subarray(0, at * ref.vocab);
        const e = relErr(got, want);
        assert.ok(e <= TOL, `relative error ${e.toExponential(2)}`);
      });
    });
});
