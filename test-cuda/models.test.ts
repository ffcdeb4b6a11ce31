// The Qwen2-VL and Vamba tiny fixtures end to end on the GPU, through the public loaders, against the PyTorch
// reference outputs committed with them (the same fixtures test/models/*.test.ts checks on the CPU):
//   f32: whole-prompt and decode-step logits within 1e-4 of the reference, greedy tokens identical;
//   bf16 (weights and activations): whole-prompt logits within a bf16 bound, top-1 agreement reported.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { generateAll, optionsFromGenerationConfig } from '../src/generate/generate.js';
import { Qwen2VL } from '../src/models/qwen2vl/model.js';
import { Vamba } from '../src/models/vamba/model.js';
import type { DType } from '../src/runtime/dtype.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { assertGreedyMatches, teacherForcedLogits } from '../test/models/parity.js';
import { FIXTURES, fixtureInputs, readArrays, readJson, relErr } from '../test/models/qwen2vl-fixtures.js';
import { readReference, VAMBA_FIXTURES } from '../test/models/vamba-fixtures.js';
import { gpu } from './helpers.js';

const F32_TOL = 1e-4;
// bf16 keeps 8 bits of mantissa: every weight and activation is rounded (~4e-3 relative) and errors add up over
// the layers; 5e-2 of the logits' scale is well inside what a 2-4-layer bf16 model gives against f32.
const BF16_TOL = 5e-2;
// Tiny random-weight models have many near-ties among their top logits, so a few argmaxes may flip in bf16.
const BF16_TOP1 = 0.8;

/** Fraction of rows of [rows, vocab] logits whose argmax equals the reference's. */
function top1Agreement(a: ArrayLike<number>, b: ArrayLike<number>, vocab: number): number {
  const argmax = (v: ArrayLike<number>, r: number) => {
    let best = r * vocab;
    for (let i = r * vocab + 1; i < (r + 1) * vocab; i++) if (v[i] > v[best]) best = i;
    return best;
  };
  const rows = b.length / vocab;
  let same = 0;
  for (let r = 0; r < rows; r++) if (argmax(a, r) === argmax(b, r)) same++;
  return same / rows;
}

async function take(t: Tensor): Promise<Float32Array> {
  try {
    return Float32Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

interface PromptRef {
  input_ids: number[];
  generated: number[];
}

for (const dtype of ['f32', 'bf16'] as const satisfies readonly DType[])
  describe(`models on the GPU in ${dtype}`, () => {
    for (const name of ['tiny-a', 'tiny-b'])
      test(`Qwen2-VL ${name} ${dtype}: logits${dtype === 'f32' ? ', decode steps and greedy tokens' : ''} vs transformers`, async (t) => {
        const dir = join(FIXTURES, name);
        const model = await Qwen2VL.load(dir, { backend: gpu, dtype });
        const ref = await readArrays(join(dir, 'reference.safetensors'));
        const meta = await readJson(join(dir, 'reference.json'));
        const proc = await readArrays(join(FIXTURES, 'processor', 'outputs.safetensors'));
        try {
          for (const [prompt, r] of Object.entries<PromptRef>(meta.prompts)) {
            const inputs = fixtureInputs(prompt, r.input_ids, proc);
            const want = ref.get(`${prompt}.logits`)!;
            const vocab = want.shape[want.shape.length - 1];
            const got = await take(model.forward(inputs));
            const err = relErr(got, want.data);
            const top1 = top1Agreement(got, want.data, vocab);
            t.diagnostic(
              `${prompt} (${r.input_ids.length} tokens): logits max rel err ${err.toExponential(2)}, top-1 agreement ${(100 * top1).toFixed(1)}%`,
            );
            if (dtype === 'bf16') {
              assert.ok(err <= BF16_TOL, `${prompt} bf16 logits: relative error ${err}`);
              assert.ok(top1 >= BF16_TOP1, `${prompt} bf16 top-1 agreement ${top1}`);
              continue;
            }
            assert.ok(err <= F32_TOL, `${prompt} logits: relative error ${err}`);
            const refSteps = ref.get(`${prompt}.step_logits`)!;
            await assertGreedyMatches(
              model.session({ capacity: 8 }), // small, so the cache has to grow
              inputs,
              optionsFromGenerationConfig(model.generationConfig!, { maxNewTokens: 8 }),
              { tokens: r.generated, stepLogits: refSteps.data, vocab: refSteps.shape[1] },
              F32_TOL,
              relErr,
              prompt,
            );
          }
        } finally {
          model[Symbol.dispose]();
        }
      });

    for (const name of ['tiny-a', 'tiny-b'])
      test(`Vamba ${name} ${dtype}: logits${dtype === 'f32' ? ', decode steps and greedy tokens' : ''} vs the PyTorch reference`, async (t) => {
        const model = await Vamba.load(join(VAMBA_FIXTURES, name), { backend: gpu, dtype });
        const ref = await readReference(name);
        // Chunks of 16 video tokens: the SSD scan runs over several chunks and carries its state.
        using handle = model.encodeVideo(ref.pixelValues, ref.grid, { chunkLen: 16 });
        try {
          const got = await (async () => {
            using cache = model.lm.newCache();
            return take(model.lm.forward(ref.inputIds, handle.kvs, cache));
          })();
          const err = relErr(got, ref.logits);
          const top1 = top1Agreement(got, ref.logits, ref.vocab);
          t.diagnostic(
            `${ref.inputIds.length} tokens, ${handle.tokens} video tokens: logits max rel err ${err.toExponential(2)}, top-1 agreement ${(100 * top1).toFixed(1)}%`,
          );
          if (dtype === 'bf16') {
            assert.ok(err <= BF16_TOL, `bf16 logits: relative error ${err}`);
            assert.ok(top1 >= BF16_TOP1, `bf16 top-1 agreement ${top1}`);
            return;
          }
          assert.ok(err <= F32_TOL, `logits: relative error ${err}`);
          {
            using session = model.session(handle);
            const out = await generateAll(session, ref.inputIds, { maxNewTokens: ref.greedyTokens.length });
            assert.deepEqual(out.tokens, ref.greedyTokens, 'greedy tokens');
          }
          using session = model.session(handle);
          const steps = await teacherForcedLogits(session, ref.inputIds, ref.greedyTokens);
          const stepErr = relErr(steps, ref.stepLogits);
          assert.ok(stepErr <= F32_TOL, `step logits: relative error ${stepErr.toExponential(2)}`);
        } finally {
          model[Symbol.dispose]();
        }
      });
  });
