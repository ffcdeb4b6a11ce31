// Tiny models written by transformers 5.17 (tools/reference/config_fixtures.py) load and give its logits.
// v5-small-vocab: a 1000-token vocabulary whose text config keeps transformers' default bos/eos ids.
// v5-two-sections: TRL's tiny shape, with two M-RoPE sections ([1, 1], head_dim 4).
// Each has a text prompt, a one-token image and a 4×6-patch image (2×3 merged tokens).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { Qwen2VL, type Qwen2VLInputs } from '../../src/models/qwen2vl/model.js';
import { CONFIG_FIXTURES } from './config-fixtures.js';
import { grids, readArrays, readJson, relErr } from './qwen2vl-fixtures.js';

/** Loads the fixture through Qwen2VL.load, checks the logits of each prompt transformers ran, then `more`. */
async function matchesTransformers(name: string, more: (m: Qwen2VL) => Promise<void> = async () => {}) {
  const dir = join(CONFIG_FIXTURES, name);
  const model = await Qwen2VL.load(dir, { backend: cpuBackend() });
  try {
    const ref = await readArrays(join(dir, 'reference.safetensors'));
    const meta = await readJson(join(dir, 'reference.json'));
    const prompts = Object.keys(meta.prompts);
    assert.ok(prompts.includes('text') && prompts.includes('image'), prompts.join());
    for (const prompt of prompts) {
      const inputs: Qwen2VLInputs = { inputIds: meta.prompts[prompt].input_ids };
      const pixels = ref.get(`${prompt}.pixel_values`);
      if (pixels) {
        inputs.pixelValues = pixels.data as Float32Array;
        inputs.imageGridThw = grids(ref, `${prompt}.image_grid_thw`);
      }
      const logits = model.forward(inputs);
      const err = relErr(await logits.data(), ref.get(`${prompt}.logits`)!.data);
      logits.dispose();
      assert.ok(err <= 1e-5, `${name} ${prompt} logits: relative error ${err}`);
    }
    await more(model);
  } finally {
    model[Symbol.dispose]();
  }
}

test('v5-small-vocab: loads through Qwen2VL.load and gives transformers 5.17 logits (f32, ≤ 1e-5)', () =>
  matchesTransformers('v5-small-vocab', async (model) => {
    assert.deepEqual([model.config.text.vocab_size, model.config.bos_token_id], [1000, 151643]);
  }));

test('v5-two-sections (mrope_section [1, 1]): transformers 5.17 logits (f32, ≤ 1e-5), a 2×3-token image included', () =>
  matchesTransformers('v5-two-sections', async (model) => {
    assert.deepEqual([model.config.text.mrope_section, model.config.text.head_dim], [[1, 1], 4]);
    // The one-token image's t, h and w positions coincide; the wide image's (grid [1, 4, 6]) do not, so its
    // logits (checked above) depend on the section split. Its positions by get_rope_index's rule:
    const ref = await readJson(join(CONFIG_FIXTURES, 'v5-two-sections', 'reference.json'));
    const ids: number[] = ref.prompts.wide_image.input_ids;
    const { positions } = model.ropeIndex({ inputIds: ids, imageGridThw: [[1, 4, 6]] });
    const start = ids.indexOf(998);
    assert.deepEqual(
      positions.map((r) => [...r.subarray(start, start + 6)]),
      [
        [3, 3, 3, 3, 3, 3],
        [3, 3, 3, 4, 4, 4],
        [3, 4, 5, 3, 4, 5],
      ],
    );
  }));
