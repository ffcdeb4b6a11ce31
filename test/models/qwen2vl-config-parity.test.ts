// Tiny models written by transformers 5.17 (tools/reference/config_fixtures.py) load and give its logits.
// v5-small-vocab: a 1000-token vocabulary whose text config keeps transformers' default bos/eos ids.
// v5-two-sections: TRL's tiny shape, with two M-RoPE sections ([1, 1], head_dim 4).
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

test('v5-two-sections (mrope_section [1, 1]): transformers 5.17 logits (f32, ≤ 1e-5); M-RoPE halves read [t, h] and [w, t]', () =>
  matchesTransformers('v5-two-sections', async (model) => {
    assert.deepEqual([model.config.text.mrope_section, model.config.text.head_dim], [[1, 1], 4]);
    // The reference image merges into one token, whose t, h and w positions coincide: the split shows only
    // with a larger image. A 4×4-patch image (2×2 merged tokens) after vision-start, by get_rope_index's rule:
    const { positions } = model.ropeIndex({
      inputIds: [995, 998, 998, 998, 998, 996],
      imageGridThw: [[1, 4, 4]],
    });
    const rows = [
      [0, 1, 1, 1, 1, 3],
      [0, 1, 1, 2, 2, 3],
      [0, 1, 2, 1, 2, 3],
    ];
    assert.deepEqual(
      positions.map((r) => [...r]),
      rows,
    );
    // transformers: cos.split([1, 1, 1, 1]) and chunk i takes row i % 3, so rotated dims 0..3 read rows
    // t, h, w, t with frequencies 0, 1, 0, 1 (inv_freq = 1e6^(-2j/4): 1 and 1e-3).
    const { cos, sin } = model.rope(positions);
    const [c, s] = [await cos.toArray(), await sin.toArray()];
    cos.dispose();
    sin.dispose();
    const use = [
      [0, 1],
      [1, 1e-3],
      [2, 1],
      [0, 1e-3],
    ];
    for (let p = 0; p < 6; p++)
      for (const [d, [row, inv]] of use.entries()) {
        const a = Math.fround(rows[row][p] * Math.fround(inv));
        assert.ok(Math.abs(c[p * 4 + d] - Math.cos(a)) < 1e-6, `cos ${p},${d}`);
        assert.ok(Math.abs(s[p * 4 + d] - Math.sin(a)) < 1e-6, `sin ${p},${d}`);
      }
  }));
