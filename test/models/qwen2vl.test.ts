// Qwen2-VL on the CPU backend against Hugging Face transformers 5.17 (fixtures from
// tools/reference/qwen2vl_fixtures.py: two tiny random-weight checkpoints in the two hub layouts).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { optionsFromGenerationConfig } from '../../src/generate/generate.js';
import { Qwen2VL } from '../../src/models/qwen2vl/model.js';
import { assertGreedyMatches } from './parity.js';
import { FIXTURES, fixtureInputs, readArrays, readJson, relErr } from './qwen2vl-fixtures.js';

const cpu = cpuBackend();
const TOL = 1e-4;

interface PromptRef {
  input_ids: number[];
  generated: number[];
  rope_deltas: number;
}

for (const name of ['tiny-a', 'tiny-b']) {
  test(`Qwen2-VL ${name}: logits, vision tokens, positions and greedy decoding equal transformers`, async (t) => {
    const dir = join(FIXTURES, name);
    const model = await Qwen2VL.load(dir, { backend: cpu });
    const ref = await readArrays(join(dir, 'reference.safetensors'));
    const meta = await readJson(join(dir, 'reference.json'));
    const proc = await readArrays(join(FIXTURES, 'processor', 'outputs.safetensors'));
    assert.equal(model.config.text.tie_word_embeddings, meta.tied);
    try {
      for (const [prompt, r] of Object.entries<PromptRef>(meta.prompts)) {
        const inputs = fixtureInputs(prompt, r.input_ids, proc);

        const { positions, ropeDelta } = model.ropeIndex(inputs);
        const refPos = ref.get(`${prompt}.position_ids`)!.data;
        assert.deepEqual(
          [...positions[0], ...positions[1], ...positions[2]],
          [...refPos],
          `${prompt} positions`,
        );
        assert.equal(ropeDelta, r.rope_deltas);

        for (const kind of ['video', 'image'] as const) {
          const want = ref.get(`${prompt}.${kind}_embeds`);
          if (!want) continue;
          const px = kind === 'video' ? inputs.pixelValuesVideos! : inputs.pixelValues!;
          const g = kind === 'video' ? inputs.videoGridThw! : inputs.imageGridThw!;
          // One pass, and one temporal group per chunk: the same tokens.
          for (const chunk of [16384, 1]) {
            const got = model.encodeVision(px, g, chunk);
            const err = relErr(await got.data(), want.data);
            got.dispose();
            assert.ok(err <= TOL, `${prompt} ${kind} tokens (chunks of ${chunk}): relative error ${err}`);
          }
        }

        const t0 = performance.now();
        const logits = model.forward(inputs);
        const ms = performance.now() - t0;
        const err = relErr(await logits.data(), ref.get(`${prompt}.logits`)!.data);
        logits.dispose();
        t.diagnostic(
          `${prompt}: ${r.input_ids.length} tokens, forward ${ms.toFixed(1)} ms, logits max rel err ${err.toExponential(2)}`,
        );
        assert.ok(err <= TOL, `${prompt} logits: relative error ${err}`);

        const refSteps = ref.get(`${prompt}.step_logits`)!;
        await assertGreedyMatches(
          model.session({ capacity: 8 }), // small, so the cache has to grow
          inputs,
          optionsFromGenerationConfig(model.generationConfig!, { maxNewTokens: 8 }),
          { tokens: r.generated, stepLogits: refSteps.data, vocab: refSteps.shape[1] },
          TOL,
          relErr,
          prompt,
        );
      }
    } finally {
      model[Symbol.dispose]();
    }
  });
}
