// The 5.x-layout tiny model written by transformers 5.17 (tools/reference/config_fixtures.py): a 1000-token
// vocabulary whose text config keeps transformers' default bos/eos ids; it loads and runs like transformers.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { Qwen2VL, type Qwen2VLInputs } from '../../src/models/qwen2vl/model.js';
import { CONFIG_FIXTURES } from './config-fixtures.js';
import { grids, readArrays, readJson, relErr } from './qwen2vl-fixtures.js';

test('v5-small-vocab: loads through Qwen2VL.load and gives transformers 5.17 logits (f32, ≤ 1e-5)', async () => {
  const dir = join(CONFIG_FIXTURES, 'v5-small-vocab');
  const model = await Qwen2VL.load(dir, { backend: cpuBackend() });
  try {
    const ref = await readArrays(join(dir, 'reference.safetensors'));
    const meta = await readJson(join(dir, 'reference.json'));
    assert.deepEqual([model.config.text.vocab_size, model.config.bos_token_id], [1000, 151643]);
    for (const prompt of ['text', 'image']) {
      const inputs: Qwen2VLInputs = { inputIds: meta.prompts[prompt].input_ids };
      if (prompt === 'image') {
        inputs.pixelValues = ref.get('image.pixel_values')!.data as Float32Array;
        inputs.imageGridThw = grids(ref, 'image.image_grid_thw');
      }
      const logits = model.forward(inputs);
      const err = relErr(await logits.data(), ref.get(`${prompt}.logits`)!.data);
      logits.dispose();
      assert.ok(err <= 1e-5, `${prompt} logits: relative error ${err}`);
    }
  } finally {
    model[Symbol.dispose]();
  }
});
