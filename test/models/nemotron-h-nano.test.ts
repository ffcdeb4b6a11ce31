/**
 * NVIDIA-Nemotron-Nano-9B-v2's config.json (values from its model card and docs/research-nemotron-h.md §2),
 * (test/fixtures/configs/nemotron-nano-9b-v2) read from a directory: 56 layers (27 Mamba-2, 4 attention at 14/21/30/39, 25 MLP), the
 * published tensor shapes and 8,888,227,328 parameters (the sum worked out by hand in the research doc).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  layerCensus,
  type NemotronHConfig,
  readNemotronHConfig,
} from '../../src/models/nemotron_h/config.js';
import { nemotronHStateBytes } from '../../src/models/nemotron_h/size.js';
import { nemotronHParamCount, nemotronHSpecs } from '../../src/models/nemotron_h/weights.js';

const NANO_9B_V2 = 'test/fixtures/configs/nemotron-nano-9b-v2/config.json';

describe('Nemotron-H: NVIDIA-Nemotron-Nano-9B-v2 config.json', () => {
  let dir: string;
  let config: NemotronHConfig;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nemoh-nano-'));
    await copyFile(NANO_9B_V2, join(dir, 'config.json'));
    config = await readNemotronHConfig(dir);
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('has 56 layers: 27 Mamba-2, 4 attention (at 14, 21, 30, 39), 25 MLP', () => {
    assert.equal(config.hybrid_override_pattern.length, 56);
    assert.deepEqual(layerCensus(config), { mamba: 27, attention: 4, mlp: 25 });
    const attention = [...config.hybrid_override_pattern].flatMap((ch, i) => (ch === '*' ? [i] : []));
    assert.deepEqual(attention, [14, 21, 30, 39]);
  });

  it('has the published tensor shapes', () => {
    const shapes = new Map(nemotronHSpecs(config).map((s) => [s.name, s.shape]));
    const want: Record<string, number[]> = {
      'backbone.embeddings.weight': [131072, 4480],
      'backbone.layers.0.norm.weight': [4480],
      'backbone.layers.0.mixer.in_proj.weight': [22656, 4480],
      'backbone.layers.0.mixer.conv1d.weight': [12288, 1, 4],
      'backbone.layers.0.mixer.conv1d.bias': [12288],
      'backbone.layers.0.mixer.dt_bias': [128],
      'backbone.layers.0.mixer.A_log': [128],
      'backbone.layers.0.mixer.D': [128],
      'backbone.layers.0.mixer.norm.weight': [10240],
      'backbone.layers.0.mixer.out_proj.weight': [4480, 10240],
      'backbone.layers.1.mixer.up_proj.weight': [15680, 4480],
      'backbone.layers.1.mixer.down_proj.weight': [4480, 15680],
      'backbone.layers.14.mixer.q_proj.weight': [5120, 4480],
      'backbone.layers.14.mixer.k_proj.weight': [1024, 4480],
      'backbone.layers.14.mixer.v_proj.weight': [1024, 4480],
      'backbone.layers.14.mixer.o_proj.weight': [4480, 5120],
      'backbone.norm_f.weight': [4480],
      'lm_head.weight': [131072, 4480],
    };
    for (const [name, shape] of Object.entries(want)) assert.deepEqual(shapes.get(name), shape, name);
    // embeddings, norm_f, lm_head; 56 block norms; 8 tensors per Mamba-2 mixer, 4 per attention, 2 per MLP.
    assert.equal(shapes.size, 3 + 56 + 27 * 8 + 4 * 4 + 25 * 2);
  });

  it('has 8,888,227,328 parameters', () => {
    assert.equal(nemotronHParamCount(config), 8_888_227_328);
  });

  it('decodes at 32k tokens in bf16 with 512 MiB of K/V and 137 MiB of Mamba-2 state', () => {
    // K/V: 4 layers × (k, v) × 8 heads × 128 × 2 B per token; Mamba: 27 × (f32 SSM 128·80·128 + 3 conv rows of 12288 in bf16).
    assert.deepEqual(nemotronHStateBytes(config, 32768, 'bf16'), {
      kv: 536_870_912,
      mamba: 27 * (128 * 80 * 128 * 4 + 3 * 12288 * 2),
    });
  });
});
