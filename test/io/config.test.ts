import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseGenerationConfig, readGenerationConfig } from '../../src/io/index.js';
import {
  parsePreprocessorConfig,
  readPreprocessorConfig,
} from '../../src/models/qwen2vl/preprocessor-config.js';

const dir = await mkdtemp(join(tmpdir(), 'longshot-cfg-'));
after(() => rm(dir, { recursive: true, force: true }));

test('generation_config.json: eos int or list, sampling fields, defaults, validation', async () => {
  // Qwen2-VL-7B-Instruct's generation_config.json.
  const g = parseGenerationConfig({
    bos_token_id: 151643,
    pad_token_id: 151643,
    do_sample: true,
    eos_token_id: [151645, 151643],
    repetition_penalty: 1.05,
    temperature: 0.1,
    top_k: 1,
    top_p: 0.001,
    transformers_version: '4.45.0.dev0',
  });
  assert.deepEqual(g.eos_token_id, [151645, 151643]);
  assert.deepEqual(
    [g.do_sample, g.temperature, g.top_k, g.top_p, g.repetition_penalty],
    [true, 0.1, 1, 0.001, 1.05],
  );
  assert.equal(g.max_new_tokens, null);
  assert.deepEqual(g.extra, { transformers_version: '4.45.0.dev0' });
  assert.deepEqual(
    parseGenerationConfig({ eos_token_id: 151645, max_new_tokens: 512 }).eos_token_id,
    [151645],
  );
  // Missing file: Hugging Face defaults.
  const d = await readGenerationConfig(join(dir, 'no-such-dir'));
  assert.deepEqual(
    [d.do_sample, d.temperature, d.top_k, d.top_p, d.repetition_penalty],
    [false, 1, 50, 1, 1],
  );
  assert.throws(() => parseGenerationConfig({ top_p: 0 }), /"top_p" must be in \(0, 1\]/);
  assert.throws(() => parseGenerationConfig({ eos_token_id: ['x'] }), /"eos_token_id" must be a token id/);
});

test('preprocessor_config.json: min/max_pixels form, size form, contradictions', async () => {
  const mean = [0.48145466, 0.4578275, 0.40821073];
  const std = [0.26862954, 0.26130258, 0.27577711];
  await writeFile(
    join(dir, 'preprocessor_config.json'),
    JSON.stringify({
      min_pixels: 3136,
      max_pixels: 12845056,
      patch_size: 14,
      temporal_patch_size: 2,
      merge_size: 2,
      image_mean: mean,
      image_std: std,
      image_processor_type: 'Qwen2VLImageProcessor',
      processor_class: 'Qwen2VLProcessor',
    }),
  );
  const p = await readPreprocessorConfig(dir);
  assert.deepEqual(
    [p.min_pixels, p.max_pixels, p.patch_size, p.temporal_patch_size, p.merge_size],
    [3136, 12845056, 14, 2, 2],
  );
  assert.deepEqual(p.image_mean, mean);
  assert.deepEqual(p.image_std, std);
  assert.equal(p.rescale_factor, 1 / 255);
  assert.equal(p.extra.image_processor_type, 'Qwen2VLImageProcessor');
  const newer = parsePreprocessorConfig({
    size: { shortest_edge: 200704, longest_edge: 1003520 },
    image_mean: mean,
    image_std: std,
  });
  assert.deepEqual([newer.min_pixels, newer.max_pixels], [200704, 1003520]);
  assert.throws(
    () => parsePreprocessorConfig({ min_pixels: 3136, size: { shortest_edge: 4096 } }),
    /contradictory pixel bounds: min_pixels 3136 but size.shortest_edge 4096/,
  );
  assert.throws(
    () => parsePreprocessorConfig({ min_pixels: 10, max_pixels: 5 }),
    /min_pixels 10 exceeds max_pixels 5/,
  );
  assert.throws(
    () => parsePreprocessorConfig({ image_mean: [0.5, 0.5] }),
    /"image_mean" must have 3 entries/,
  );
  await assert.rejects(readPreprocessorConfig(join(dir, 'nope')), /preprocessor_config.json: file not found/);
});
