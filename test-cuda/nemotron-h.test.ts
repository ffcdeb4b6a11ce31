// Nemotron-H on the GPU. The transformers fixtures (test/fixtures/nemotron_h) in f32: logits, the prompt in
// the manifest's pieces then single tokens, greedy tokens; in bf16 within the models' bf16 bound. Then a stack
// at Nano-9B-v2's mixer sizes (40/8 heads of 128, 128 Mamba heads of 80, state 128, 8 groups, chunk 128) with
// random weights against the CPU backend in f32, over more than two SSD chunks.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { parseNemotronHConfig } from '../src/models/nemotron_h/config.js';
import { NemotronHForCausalLM } from '../src/models/nemotron_h/model.js';
import { nemotronHSpecs } from '../src/models/nemotron_h/weights.js';
import { ParamStore } from '../src/nn/params.js';
import type { Backend } from '../src/runtime/backend.js';
import type { DType } from '../src/runtime/dtype.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { relErr, rng } from '../test/helpers.js';
import { randomWeights } from '../test/models/nemotron-h-reference.js';
import { cpu, gpu } from './helpers.js';

const DIR = join(import.meta.dirname, '..', 'test', 'fixtures', 'nemotron_h');
const manifest = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8'));
const TOL: Record<string, number> = { f32: 1e-4, bf16: 5e-2 };

async function rows(t: Tensor): Promise<number[]> {
  try {
    return Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

/** Logits of ids fed in `pieces` (then one token at a time for the rest) through one cache. */
async function inPieces(model: NemotronHForCausalLM, ids: number[], pieces: number[]): Promise<number[]> {
  using cache = model.newCache(4);
  const out: number[] = [];
  let at = 0;
  for (const n of [...pieces, ...Array(ids.length - pieces.reduce((a, b) => a + b, 0)).fill(1)]) {
    out.push(...(await rows(model.forward(ids.slice(at, at + n), cache))));
    at += n;
  }
  return out;
}

for (const dtype of ['f32', 'bf16'] as const)
  describe(`Nemotron-H fixtures on the GPU (${dtype})`, () => {
    for (const [name, m] of Object.entries<{ prefill_pieces: number[]; greedy_tokens: number[] }>(
      manifest.cases,
    ))
      test(name, async () => {
        using model = await NemotronHForCausalLM.load(join(DIR, name), { backend: gpu, dtype });
        const f = await SafetensorsFile.open(join(DIR, name, 'reference.safetensors'));
        const get = async (n: string) =>
          rows(await f.loadTensor(cpu, n, n.endsWith('ids') ? {} : { dtype: 'f32' }));
        const [full, input, logits] = [await get('full_ids'), await get('input_ids'), await get('logits')];
        await f.close();
        const one = await rows(model.forward(full));
        assert.ok(relErr(one, logits) <= TOL[dtype], `logits: ${relErr(one, logits).toExponential(2)}`);
        const pieces = await inPieces(model, full.slice(0, -1), m.prefill_pieces);
        const e = relErr(pieces, one.slice(0, pieces.length));
        assert.ok(e <= TOL[dtype], `pieces + decode vs one forward: ${e.toExponential(2)}`);
        if (dtype === 'bf16') return;
        const tokens: number[] = [];
        for await (const t of model.generate(input, { maxNewTokens: m.greedy_tokens.length, stopTokens: [] }))
          tokens.push(t.token);
        assert.deepEqual(tokens, m.greedy_tokens);
      });
  });

describe("Nemotron-H at Nano-9B-v2's mixer sizes: GPU vs CPU", () => {
  const config = parseNemotronHConfig({
    model_type: 'nemotron_h',
    hybrid_override_pattern: 'M*-M',
    vocab_size: 256,
    hidden_size: 512,
    intermediate_size: 1024,
    num_attention_heads: 40,
    num_key_value_heads: 8,
    head_dim: 128,
    mamba_num_heads: 128,
    mamba_head_dim: 80,
    ssm_state_size: 128,
    n_groups: 8,
    conv_kernel: 4,
    chunk_size: 128,
    eos_token_id: 2,
  });
  const specs = nemotronHSpecs(config);
  const weights = randomWeights(specs, rng(5));
  const build = (backend: Backend, dtype: DType) =>
    NemotronHForCausalLM.fromParams(
      config,
      new ParamStore(
        specs.map((s) => [s.name, ops.tensor(backend, weights.get(s.name)!, s.shape, dtype)] as const),
      ),
    );
  const r = rng(6);
  const ids = Array.from({ length: 200 }, () => 3 + Math.floor(r() * 250));

  test('f32 and bf16 logits of 200 tokens, and pieces + decode in bf16', async () => {
    using ref = build(cpu, 'f32');
    const want = await rows(ref.forward(ids));
    for (const dtype of ['f32', 'bf16'] as const) {
      using model = build(gpu, dtype);
      const got = await rows(model.forward(ids));
      assert.ok(relErr(got, want) <= TOL[dtype], `${dtype}: ${relErr(got, want).toExponential(2)}`);
      if (dtype === 'bf16') {
        const pieces = await inPieces(model, ids, [91, 1, 105]);
        assert.ok(
          relErr(pieces, got) <= TOL.bf16,
          `bf16 pieces + decode: ${relErr(pieces, got).toExponential(2)}`,
        );
      }
    }
  });
});
