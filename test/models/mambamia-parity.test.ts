/**
 * The MambaMia compressor against the derivative's own MambaMia2Model (naver-ai/unimambamia-av) on tiny random
 * weights: the fixtures tools/reference/mambamia_fixtures.py makes (causal, causal + gated aggregation,
 * bidirectional, bidirectional + gated, and the last with the secondary sampling, a norm after the gate and biases).
 * The reference's fused Mamba-2 kernel is a float64 torch stand-in with the same maths (docs/mambamia.md).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { InputError } from '../../src/errors.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { MambaMiaCompressor } from '../../src/models/mambamia/compressor.js';
import { parseMambaMiaConfig } from '../../src/models/mambamia/config.js';
import { loadMambaMiaCompressor } from '../../src/models/mambamia/weights.js';
import { countParams } from '../../src/nn/params.js';
import * as ops from '../../src/runtime/ops.js';
import { relErr } from '../helpers.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'mambamia');
const TOL = 1e-5;
const be = cpuBackend();

const manifest = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as {
  bad_length_error: string | null;
  cases: Record<string, { frames: number; patches: number; tokens: number; parameters: number }>;
};

async function open(name: string) {
  const config = parseMambaMiaConfig(JSON.parse(readFileSync(join(DIR, name, 'config.json'), 'utf8')));
  await using weights = await SafetensorsFile.open(join(DIR, name, 'model.safetensors'));
  const compressor = await loadMambaMiaCompressor(weights, config, be, 'f32', name);
  await using ref = await SafetensorsFile.open(join(DIR, name, 'reference.safetensors'));
  using output = await ref.loadTensor(be, 'output', { dtype: 'f32' });
  return {
    config,
    compressor,
    features: await ref.loadTensor(be, 'features', { dtype: 'f32' }),
    output: Float64Array.from(await output.data()),
  };
}

describe('MambaMia compressor vs the derivative (fixtures)', () => {
  it('has the five cases of the fixture script', () => {
    assert.deepEqual(Object.keys(manifest.cases).sort(), [
      'bi',
      'bi_gated',
      'bi_gated_sampled',
      'uni',
      'uni_gated',
    ]);
  });

  for (const [name, m] of Object.entries(manifest.cases))
    it(`${name}: ${m.frames}×${m.patches} patches → ${m.tokens} tokens within ${TOL}`, async () => {
      const { config, compressor, features, output } = await open(name);
      using _c = compressor;
      using _f = features;
      assert.equal(countParams(MambaMiaCompressor.specs('', config)), m.parameters);
      assert.equal(MambaMiaCompressor.tokenCount(config, m.frames, m.patches), m.tokens);
      using out = compressor.forward(features);
      assert.deepEqual(out.shape, [m.tokens, config.output_size]);
      const e = relErr(Float64Array.from(await out.data()), output);
      assert.ok(e <= TOL, `relative error ${e.toExponential(2)}`);
    });

  it('refuses a block input that is not whole groups of k + 1, as the derivative does', async () => {
    assert.match(manifest.bad_length_error ?? '', /not divisible by \(mambamia_chunk_size\+1\)=5/);
    const { compressor, features } = await open('uni_gated');
    using _c = compressor;
    features.dispose();
    using x = ops.zeros(be, [1, 2 * 5 + 3, compressor.config.hidden_size]);
    assert.throws(
      () => compressor.layers[0].forward(x),
      (e: unknown) => {
        assert.ok(e instanceof InputError);
        assert.match(e.message, /13 tokens is not whole groups of k = 4 .*multiple of 5/);
        return true;
      },
    );
  });
});
