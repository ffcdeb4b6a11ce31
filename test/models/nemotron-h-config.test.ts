/**
 * Nemotron-H config.json: the block pattern (string or transformers 5's list, errors naming bad characters),
 * NemotronHConfig's defaults, the legacy mamba_* keys, and the spellings of an infinite time_step_limit.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ModelError } from '../../src/errors.js';
import {
  layerCensus,
  parseNemotronHConfig,
  readNemotronHConfig,
} from '../../src/models/nemotron_h/config.js';

const INF = Number.POSITIVE_INFINITY;
const parse = (o: Record<string, unknown>) => parseNemotronHConfig({ model_type: 'nemotron_h', ...o });
const rejects = (o: Record<string, unknown>, message: RegExp) =>
  assert.throws(
    () => parse(o),
    (e: unknown) => e instanceof ModelError && message.test(e.message),
  );

describe('Nemotron-H config: the block pattern', () => {
  it('reads hybrid_override_pattern and counts the blocks', () => {
    const c = parse({ hybrid_override_pattern: 'M-M*-MM', num_hidden_layers: 7 });
    assert.equal(c.hybrid_override_pattern, 'M-M*-MM');
    assert.deepEqual(layerCensus(c), { mamba: 4, attention: 1, mlp: 2 });
  });

  it('rejects other characters, naming each and its layer', () => {
    rejects(
      { hybrid_override_pattern: 'M*E-' },
      /"E" \(MoE\) at layer 2.*M = Mamba-2, \* = attention, - = MLP/,
    );
    rejects({ hybrid_override_pattern: 'MxM+' }, /"x" at layer 1, "\+" at layer 3/);
    rejects({ hybrid_override_pattern: '' }, /hybrid_override_pattern" is empty/);
  });

  it('rejects a pattern whose length is not num_hidden_layers, and a config with no stack', () => {
    rejects(
      { hybrid_override_pattern: 'M-*', num_hidden_layers: 4 },
      /num_hidden_layers is 4 but .* 3 layers/,
    );
    rejects({ num_hidden_layers: 4 }, /neither "hybrid_override_pattern" nor "layers_block_type"/);
  });

  it("reads transformers 5's layers_block_type in both generations of names", () => {
    const a = parse({ layers_block_type: ['mamba', 'mlp', 'attention', 'mamba'] });
    const b = parse({ layers_block_type: ['linear_attention', 'mlp', 'full_attention', 'linear_attention'] });
    assert.equal(a.hybrid_override_pattern, 'M-*M');
    assert.equal(b.hybrid_override_pattern, 'M-*M');
    assert.equal(
      parse({ hybrid_override_pattern: 'M-', layers_block_type: ['mamba', 'mlp'] }).hybrid_override_pattern,
      'M-',
    );
    rejects({ layers_block_type: ['mamba', 'moe'] }, /"E" \(MoE\) at layer 1/);
    rejects({ layers_block_type: ['mamba', 'conv'] }, /unknown block types "conv"/);
    rejects(
      { hybrid_override_pattern: 'M*', layers_block_type: ['mamba', 'mlp'] },
      /contradicts layers_block_type/,
    );
  });
});

describe('Nemotron-H config: values', () => {
  it("takes NemotronHConfig's defaults for absent keys", () => {
    const c = parse({ hybrid_override_pattern: 'M*-' });
    assert.deepEqual(
      {
        vocab: c.vocab_size,
        hidden: c.hidden_size,
        heads: [c.num_attention_heads, c.num_key_value_heads, c.head_dim],
        mlp: [c.intermediate_size, c.mlp_hidden_act, c.mlp_bias],
        mamba: [
          c.mamba_num_heads,
          c.mamba_head_dim,
          c.ssm_state_size,
          c.n_groups,
          c.conv_kernel,
          c.chunk_size,
        ],
        dt: [c.time_step_limit, c.time_step_min, c.time_step_max, c.time_step_floor],
        biases: [c.use_conv_bias, c.use_bias, c.attention_bias],
        eps: c.layer_norm_epsilon,
        fp32: c.residual_in_fp32,
        tied: c.tie_word_embeddings,
        ids: [c.bos_token_id, c.eos_token_id, c.pad_token_id],
        ssmCache: c.mamba_ssm_cache_dtype,
      },
      {
        vocab: 131072,
        hidden: 4096,
        heads: [32, 8, 128],
        mlp: [21504, 'relu2', false],
        mamba: [128, 64, 128, 8, 4, 128],
        dt: [[0, INF], 0.001, 0.1, 1e-4],
        biases: [true, false, false],
        eps: 1e-5,
        fp32: false,
        tied: false,
        ids: [1, [2], 0],
        ssmCache: 'float32',
      },
    );
  });

  it('null means none for token ids, and all heads for num_key_value_heads', () => {
    const c = parse({
      hybrid_override_pattern: '*',
      pad_token_id: null,
      num_attention_heads: 6,
      num_key_value_heads: null,
    });
    assert.equal(c.pad_token_id, null);
    assert.equal(c.num_key_value_heads, 6);
  });

  it('lets the legacy mamba_* keys override their new names, as transformers does', () => {
    const c = parse({
      hybrid_override_pattern: 'M',
      mamba_num_heads: 8,
      mamba_n_groups: 2,
      n_groups: 4,
      mamba_d_conv: 3,
      mamba_chunk_size: 256,
      chunk_size: 64,
      mamba_conv_bias: false,
      mamba_dt_limit: [0.01, 5],
    });
    assert.deepEqual(
      [c.n_groups, c.conv_kernel, c.chunk_size, c.use_conv_bias, c.time_step_limit],
      [2, 3, 256, false, [0.01, 5]],
    );
    assert.deepEqual(c.extra, {}, 'legacy keys and the names they shadow are read, not extras');
  });

  it('keeps keys it does not interpret as extras', () => {
    const c = parse({ hybrid_override_pattern: 'M', auto_map: { AutoConfig: 'x' }, rms_norm_eps: 1e-5 });
    assert.deepEqual(c.extra, { auto_map: { AutoConfig: 'x' }, rms_norm_eps: 1e-5 });
  });

  it('rejects shapes the mixers cannot use, naming the keys', () => {
    rejects(
      { hybrid_override_pattern: 'M', mamba_num_heads: 10, n_groups: 4 },
      /mamba_num_heads 10 .* n_groups 4/,
    );
    rejects(
      { hybrid_override_pattern: '*', num_attention_heads: 6, num_key_value_heads: 4 },
      /num_key_value_heads 4/,
    );
    rejects(
      { hybrid_override_pattern: 'M', mamba_hidden_act: 'gelu' },
      /mamba_hidden_act" "gelu" is not supported/,
    );
    rejects(
      { hybrid_override_pattern: '-', mlp_hidden_act: 'swiglu' },
      /mlp_hidden_act" unsupported activation "swiglu"/,
    );
    rejects(
      { hybrid_override_pattern: 'M', vocab_size: 100, eos_token_id: [2, 100] },
      /token id 100 is outside/,
    );
    rejects(
      { hybrid_override_pattern: 'M', model_type: 'mamba2' },
      /model_type "mamba2" is not a Nemotron-H config/,
    );
  });
});

describe('Nemotron-H config: time_step_limit', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nemoh-config-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  /** Reads a config.json written as `text` (not necessarily strict JSON). */
  const read = async (limit: string | null) => {
    const entry = limit === null ? '' : `, "time_step_limit": ${limit}`;
    await writeFile(
      join(dir, 'config.json'),
      `{"model_type": "nemotron_h", "hybrid_override_pattern": "M"${entry}}`,
    );
    return (await readNemotronHConfig(dir)).time_step_limit;
  };

  it('reads Python json\'s bare Infinity, transformers 5\'s {"__float__": "Infinity"}, strings, and a missing key', async () => {
    assert.deepEqual(await read('[0.0, Infinity]'), [0, INF]);
    assert.deepEqual(await read('[0.0, {"__float__": "Infinity"}]'), [0, INF]);
    assert.deepEqual(await read('[0.0, "inf"]'), [0, INF]);
    assert.deepEqual(await read(null), [0, INF]);
    assert.deepEqual(await read('[0.001, 0.1]'), [0.001, 0.1]);
  });

  it('rejects anything but a rising non-negative pair', async () => {
    for (const bad of ['[0.1, 0.01]', '[-1, 1]', '[0]', '[0, "lots"]', '[0, NaN]', '{"low": 0}'])
      await assert.rejects(read(bad), /"time_step_limit" must be a \[low, high\] pair/, bad);
  });
});
