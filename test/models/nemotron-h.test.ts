/**
 * Nemotron-H on tiny random models against the float64 reference written in nemotron-h-reference.ts: several
 * stacks (attention first, a run of Mamba-2 blocks, an MLP stretch, MLP first), n_groups
 * > 1, lengths that are not multiples of the SSD chunk, a dt limit that clamps, biases, an f32 residual. Then
 * the ways to feed a sequence (pieces of any length, single tokens, a resumed prefix snapshot) against one
 * forward, greedy generation, and loading the same model from a sharded checkpoint directory.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { ModelError } from '../../src/errors.js';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { type NemotronHConfig, parseNemotronHConfig } from '../../src/models/nemotron_h/config.js';
import { NemotronHForCausalLM } from '../../src/models/nemotron_h/model.js';
import { nemotronHStateBytes } from '../../src/models/nemotron_h/size.js';
import { nemotronHSpecs } from '../../src/models/nemotron_h/weights.js';
import { ParamStore } from '../../src/nn/params.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { relErr, rng } from '../helpers.js';
import { NaiveNemotronH, naiveGreedy, randomWeights, type Weights } from './nemotron-h-reference.js';

const be = cpuBackend();
const TOL = 1e-5;
const VOCAB = 48;

const base = {
  model_type: 'nemotron_h',
  vocab_size: VOCAB,
  hidden_size: 16,
  intermediate_size: 24,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 6,
  mamba_num_heads: 4,
  mamba_head_dim: 5,
  n_groups: 2,
  ssm_state_size: 4,
  conv_kernel: 4,
  chunk_size: 4,
  layer_norm_epsilon: 1e-5,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 0,
};

interface Case {
  name: string;
  config: Record<string, unknown>;
  /** Prompt length and the pieces it is prefilled in (the rest of the ids are decoded one by one). */
  pieces: number[];
  seed: number;
}

const CASES: Case[] = [
  { name: 'attention first', config: { hybrid_override_pattern: '*M-M' }, pieces: [4, 1, 6], seed: 1 },
  {
    name: 'a run of Mamba-2, 3 groups, MQA',
    config: { hybrid_override_pattern: 'MMM-*-', mamba_num_heads: 6, n_groups: 3, num_key_value_heads: 1 },
    pieces: [3, 7, 3],
    seed: 2,
  },
  {
    name: 'an MLP stretch, conv kernel 3, MHA, chunk 8',
    config: { hybrid_override_pattern: 'M--*-', conv_kernel: 3, chunk_size: 8, num_key_value_heads: 4 },
    pieces: [8, 1, 10],
    seed: 3,
  },
  {
    name: 'MLP first, one group, f32 residual, dt clamped, biases, tie_word_embeddings ignored',
    config: {
      hybrid_override_pattern: '-M*M',
      n_groups: 1,
      tie_word_embeddings: true,
      residual_in_fp32: true,
      time_step_limit: [0.05, 0.2],
      use_bias: true,
      mlp_bias: true,
    },
    pieces: [2, 7],
    seed: 4,
  },
];

/** The engine's model and the reference from one set of random weights. */
function build(
  config: NemotronHConfig,
  seed: number,
): { model: NemotronHForCausalLM; naive: NaiveNemotronH; weights: Weights } {
  const weights = randomWeights(nemotronHSpecs(config), rng(seed));
  const store = new ParamStore(
    nemotronHSpecs(config).map(
      (s) => [s.name, ops.tensor(be, weights.get(s.name)!, s.shape, 'f32')] as const,
    ),
  );
  return {
    model: NemotronHForCausalLM.fromParams(config, store),
    naive: new NaiveNemotronH(config, weights),
    weights,
  };
}

const randomIds = (n: number, seed: number) => {
  const r = rng(seed);
  return [1, ...Array.from({ length: n - 1 }, () => 3 + Math.floor(r() * (VOCAB - 3)))];
};

async function rows(t: Tensor): Promise<Float32Array> {
  try {
    return Float32Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

const flat = (xs: readonly ArrayLike<number>[]) => Float64Array.from(xs.flatMap((x) => Array.from(x)));

for (const c of CASES)
  describe(`Nemotron-H vs float64 recurrence: ${c.name}`, () => {
    const config = parseNemotronHConfig({ ...base, ...c.config });
    const { model, naive } = build(config, c.seed);
    const L = c.pieces.reduce((a, b) => a + b, 0);
    const decode = 5;
    const ids = randomIds(L + decode, 100 + c.seed);
    const expected = flat(naive.forward(ids, naive.newState()));
    after(() => model[Symbol.dispose]());

    it(`one forward of ${ids.length} tokens (chunk ${config.chunk_size}) matches`, async () => {
      const got = await rows(model.forward(ids));
      const e = relErr(got, expected);
      assert.ok(e <= TOL, `relative error ${e.toExponential(2)}`);
    });

    it(`the prompt in pieces ${c.pieces.join('+')}, then ${decode} single tokens, equals one forward`, async () => {
      const single = await rows(model.forward(ids));
      using cache = model.newCache(2);
      const got: Float32Array[] = [];
      let at = 0;
      for (const n of [...c.pieces, ...Array(decode).fill(1)]) {
        got.push(await rows(model.forward(ids.slice(at, at + n), cache)));
        at += n;
      }
      assert.equal(cache.length, ids.length);
      const all = flat(got);
      const e = relErr(all, single);
      assert.ok(e <= TOL, `pieces vs one forward: relative error ${e.toExponential(2)}`);
      assert.ok(relErr(all, expected) <= TOL, 'pieces vs the reference');
    });

    it('greedy generation gives the reference greedy tokens', async () => {
      const prompt = ids.slice(0, L);
      const want = naiveGreedy(naive, prompt, 6);
      assert.ok(want.margin > 1e-3, `the reference has a near tie (${want.margin}); pick another seed`);
      const tokens: number[] = [];
      for await (const t of model.generate(prompt, { maxNewTokens: 6, stopTokens: [] })) tokens.push(t.token);
      assert.deepEqual(tokens, want.tokens);
    });
  });

describe('Nemotron-H: a prefix snapshot resumed by several sessions', () => {
  const config = parseNemotronHConfig({ ...base, hybrid_override_pattern: 'M*-M' });
  const { model } = build(config, 9);
  after(() => model[Symbol.dispose]());

  it('each continuation equals one forward of prefix + its own tokens', async () => {
    const prefix = randomIds(9, 20);
    const suffixes = [randomIds(5, 21).slice(1), randomIds(3, 22).slice(1), [7]];
    using cache = model.newCache(4);
    model.forward(prefix, cache).dispose();
    using snap = cache.snapshot();
    const sessions = suffixes.map(() => model.session({ from: snap }));
    try {
      // Interleaved: every session writes after the shared prefix while the others are alive.
      const got = await Promise.all(
        sessions.map(async (s, i) => {
          const out: Float32Array[] = [await rows(s.prefill(suffixes[i].slice(0, 1)))];
          for (const t of suffixes[i].slice(1)) out.push(await rows(s.step(t)));
          return flat(out);
        }),
      );
      for (const [i, suffix] of suffixes.entries()) {
        const whole = await rows(model.forward([...prefix, ...suffix]));
        const want = whole.subarray(prefix.length * VOCAB);
        assert.ok(relErr(got[i], want) <= TOL, `continuation ${i}: relative error ${relErr(got[i], want)}`);
      }
    } finally {
      for (const s of sessions) s[Symbol.dispose]();
    }
  });
});

describe('Nemotron-H: the decoding state', () => {
  it('is the K/V of the attention blocks and one state per Mamba-2 block, as nemotronHStateBytes says', () => {
    const config = parseNemotronHConfig({ ...base, hybrid_override_pattern: 'M*-M*M' });
    using model = build(config, 11).model;
    using cache = model.newCache(13);
    model.forward(randomIds(13, 12), cache).dispose();
    const { kv, mamba } = nemotronHStateBytes(config, 13, 'f32');
    assert.equal(cache.bytes, kv + mamba);
    // 2 attention blocks × (k, v) × 2 kv heads × 6 × 4 B per token; 3 × (f32 SSM 4·5·4 + 3 conv rows of 36).
    assert.deepEqual({ kv, mamba }, { kv: 13 * 2 * 2 * 2 * 6 * 4, mamba: 3 * (4 * 5 * 4 * 4 + 3 * 36 * 4) });
  });
});

describe('Nemotron-H: loading a checkpoint directory', () => {
  const config = { ...base, hybrid_override_pattern: 'M-*M', num_hidden_layers: 4 };
  const parsed = parseNemotronHConfig(config);
  const specs = nemotronHSpecs(parsed);
  const weights = randomWeights(specs, rng(31));
  let dir: string;
  const host = (name: string) => {
    const s = specs.find((x) => x.name === name)!;
    return { dtype: 'F32' as const, shape: [...s.shape], data: weights.get(name)! };
  };

  /** config.json and two shards with their index; `drop` leaves a tensor out, `extra` adds some. */
  async function write(
    opts: { drop?: string; extra?: Record<string, number[]>; config?: Record<string, unknown> } = {},
  ) {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...opts.config }));
    const names = specs.map((s) => s.name).filter((n) => n !== opts.drop);
    const shards: Record<string, Record<string, ReturnType<typeof host>>> = {
      'model-00001-of-00002.safetensors': {},
      'model-00002-of-00002.safetensors': {},
    };
    names.forEach((n, i) => {
      shards[`model-0000${1 + (i % 2)}-of-00002.safetensors`][n] = host(n);
    });
    for (const [n, shape] of Object.entries(opts.extra ?? {}))
      shards['model-00002-of-00002.safetensors'][n] = {
        dtype: 'F32',
        shape,
        data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5),
      };
    const weightMap: Record<string, string> = {};
    for (const [file, tensors] of Object.entries(shards)) {
      await saveSafetensors(join(dir, file), tensors);
      for (const n of Object.keys(tensors)) weightMap[n] = file;
    }
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nemoh-load-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('loads sharded safetensors (skipping the mtp.* head) and matches the reference', async () => {
    await write({ extra: { 'mtp.layers.0.norm.weight': [16] } });
    using model = await NemotronHForCausalLM.load(dir, { backend: be });
    const ids = randomIds(11, 32);
    const naive = new NaiveNemotronH(parsed, weights);
    const e = relErr(await rows(model.forward(ids)), flat(naive.forward(ids, naive.newState())));
    assert.ok(e <= TOL, `relative error ${e.toExponential(2)}`);
    assert.deepEqual(model.stopTokens, [2]);
  });

  it('keeps an f32 residual stream under bf16 weights (residual_in_fp32), within bf16 rounding', async () => {
    await write({ config: { residual_in_fp32: true } });
    using model = await NemotronHForCausalLM.load(dir, { backend: be, dtype: 'bf16' });
    assert.equal(model.backbone.residualDtype, 'f32');
    assert.equal(model.lm_head.weight.dtype, 'bf16');
    const ids = randomIds(11, 33);
    const naive = new NaiveNemotronH(parsed, weights);
    const e = relErr(await rows(model.forward(ids)), flat(naive.forward(ids, naive.newState())));
    assert.ok(e <= 5e-2, `relative error ${e.toExponential(2)}`);
  });

  it('names a missing tensor and an unexpected one', async () => {
    await write({
      drop: 'backbone.layers.3.mixer.D',
      extra: { 'backbone.layers.1.mixer.gate_proj.weight': [24, 16] },
    });
    await assert.rejects(
      NemotronHForCausalLM.load(dir, { backend: be }),
      (e: unknown) =>
        e instanceof ModelError &&
        /1 missing: backbone\.layers\.3\.mixer\.D/.test(e.message) &&
        /1 unexpected: backbone\.layers\.1\.mixer\.gate_proj\.weight/.test(e.message),
    );
  });
});
