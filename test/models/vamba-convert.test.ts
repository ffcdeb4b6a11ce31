/**
 * Qwen2-VL → Vamba conversion: the Qwen2-VL tensors are copied unchanged, each cross-attention equals its
 * layer's self-attention (weights and outputs), the Mamba-2 blocks follow mamba_ssm's initialisation, α = 0.5;
 * sharded output loads back as a Vamba model; `longshot convert` drives it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { InputError } from '../../src/errors.js';
import { Checkpoint, INDEX_FILE, saveSafetensors } from '../../src/io/index.js';
import { hasVambaTensors } from '../../src/models/vamba/config.js';
import { convertQwen2VLToVamba } from '../../src/models/vamba/convert.js';
import { Vamba } from '../../src/models/vamba/model.js';
import { vambaSpecs } from '../../src/models/vamba/weights.js';
import * as ops from '../../src/runtime/ops.js';
import { dropVambaFields, randn, rng } from '../helpers.js';
import { relErr, VAMBA_FIXTURES } from './vamba-fixtures.js';

const be = cpuBackend();
let dir: string;
let src: string;

async function values(ck: Checkpoint, name: string): Promise<Float32Array> {
  const t = await ck.loadTensor(be, name, { dtype: 'f32' });
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vamba-convert-'));
  // A Qwen2-VL checkpoint: tiny-a without its Vamba tensors and config fields.
  src = join(dir, 'qwen2vl');
  await cp(join(VAMBA_FIXTURES, 'tiny-a'), src, { recursive: true });
  await rm(join(src, 'reference.safetensors'));
  const cfg = JSON.parse(await readFile(join(src, 'config.json'), 'utf8'));
  dropVambaFields(cfg);
  await writeFile(join(src, 'config.json'), JSON.stringify(cfg));
  await writeFile(join(src, 'tokenizer_config.json'), '{"model_max_length": 4096}');
  const ck = await Checkpoint.open(join(VAMBA_FIXTURES, 'tiny-a'));
  const tensors = new Map();
  for (const n of ck.names()) if (!hasVambaTensors([n])) tensors.set(n, await ck.read(n));
  await ck.close();
  await saveSafetensors(join(src, 'model.safetensors'), tensors);
});
after(async () => rm(dir, { recursive: true, force: true }));

describe('convert Qwen2-VL → Vamba', () => {
  let out: string;
  before(async () => {
    out = join(dir, 'vamba');
    const r = await convertQwen2VLToVamba(src, out, { seed: 3, shardBytes: 300_000 });
    assert.ok(r.shards.length > 1, 'small shards give several files');
  });

  it('writes every tensor of the Vamba layout in sharded safetensors with an index', async () => {
    const files = await readdir(out);
    assert.ok(files.includes(INDEX_FILE));
    assert.ok(files.includes('tokenizer_config.json'));
    const cfg = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.use_alpha_balancing, true);
    assert.equal(cfg.vision_mamba_mixer_config.enable, true);
    const ck = await Checkpoint.open(out);
    try {
      const want = vambaSpecs((await Vamba.load(out, { backend: be })).config)
        .map((s) => s.name)
        .sort();
      assert.deepEqual(ck.names().sort(), want);
    } finally {
      await ck.close();
    }
  });

  it('copies Qwen2-VL tensors and initialises each cross-attention from its self-attention', async () => {
    const a = await Checkpoint.open(src);
    const b = await Checkpoint.open(out);
    try {
      for (const n of a.names()) assert.deepEqual(await values(b, n), await values(a, n), n);
      for (const layer of [0, 1])
        for (const p of [
          'q_proj.weight',
          'q_proj.bias',
          'k_proj.weight',
          'k_proj.bias',
          'v_proj.weight',
          'v_proj.bias',
          'o_proj.weight',
        ])
          assert.deepEqual(
            await values(b, `model.layers.${layer}.cross_attn.${p}`),
            await values(a, `model.layers.${layer}.self_attn.${p}`),
          );
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('the converted cross-attention computes what the source self-attention computes', async () => {
    using model = await Vamba.load(out, { backend: be });
    const layer = model.lm.layers[1];
    const x = ops.tensor(be, randn(7 * 64, rng(1)), [7, 64]);
    const cross = layer.cross_attn.forward(x, layer.cross_attn.keysValues(x, null), null);
    const self = layer.self_attn.forward(x, { rope: null, causal: false });
    assert.ok(relErr(await cross.data(), await self.data()) < 1e-6);
  });

  it('initialises Mamba-2 as mamba_ssm and α = 0.5', async () => {
    const b = await Checkpoint.open(out);
    try {
      const p = 'model.layers.1.vision_mixer';
      assert.deepEqual([...(await values(b, 'model.layers.0.alpha'))], [0.5]);
      assert.ok((await values(b, `${p}.mixer.D`)).every((v) => v === 1));
      assert.ok((await values(b, `${p}.norm.weight`)).every((v) => v === 1));
      assert.ok((await values(b, `${p}.mixer.norm.weight`)).every((v) => v === 1));
      const A = await values(b, `${p}.mixer.A_log`);
      assert.ok(A.every((v) => v >= 0 && v <= Math.log(16)));
      const dt = [...(await values(b, `${p}.mixer.dt_bias`))].map((v) => Math.log1p(Math.exp(v)));
      assert.ok(
        dt.every((v) => v >= 0.001 * 0.999 && v <= 0.1 * 1.001),
        `dt ${dt}`,
      );
      const inProj = await values(b, `${p}.mixer.in_proj.weight`);
      assert.ok(inProj.every((v) => Math.abs(v) <= 1 / 8) && inProj.some((v) => Math.abs(v) > 0.1));
      const conv = await values(b, `${p}.mixer.conv1d.weight`);
      assert.ok(conv.every((v) => Math.abs(v) <= 0.5) && conv.some((v) => Math.abs(v) > 0.4));
      // Layers get different draws.
      assert.notDeepEqual(await values(b, 'model.layers.0.vision_mixer.mixer.A_log'), A);
    } finally {
      await b.close();
    }
  });

  it('the same seed gives the same checkpoint; another seed other Mamba weights', async () => {
    const again = join(dir, 'again');
    const other = join(dir, 'other');
    await convertQwen2VLToVamba(src, again, { seed: 3 });
    await convertQwen2VLToVamba(src, other, { seed: 4 });
    const [a, b, c] = await Promise.all([
      Checkpoint.open(out),
      Checkpoint.open(again),
      Checkpoint.open(other),
    ]);
    try {
      const n = 'model.layers.0.vision_mixer.mixer.in_proj.weight';
      assert.deepEqual(await values(b, n), await values(a, n));
      assert.notDeepEqual(await values(c, n), await values(a, n));
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('refuses to convert a Vamba checkpoint', async () => {
    await assert.rejects(convertQwen2VLToVamba(out, join(dir, 'twice')), InputError);
  });
});

describe('longshot convert', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'convert', ...args], {
      encoding: 'utf8',
    });

  it('converts and reports as JSON', async () => {
    const out = join(dir, 'cli');
    const r = cli(src, out, '--json', '--seed', '1');
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    const ck = await Checkpoint.open(out);
    assert.equal(report.tensors, ck.names().length);
    await ck.close();
    assert.deepEqual(report.shards, ['model.safetensors']);
  });

  it('a missing source is a model error (exit 4) with a one-line message', () => {
    const r = cli(join(dir, 'nope'), join(dir, 'x'));
    assert.equal(r.status, 4);
    assert.match(r.stderr, /^longshot: .*nope/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});
