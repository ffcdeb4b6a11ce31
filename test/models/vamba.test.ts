/**
 * Vamba against the PyTorch reference (tools/reference/vamba_reference.py, built from transformers 5.17's
 * Qwen2-VL and Mamba-2 modules): tiny-a has the published switches (α on, several SSD chunks in the video),
 * tiny-b the others (no α, RoPE and the shared norm in cross-attention, ngroups 2). Plus encode-once /
 * ask-many: chunked encoding, saved handles, key checks; loader checks; the published parameter count.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { InputError, ModelError } from '../../src/errors.js';
import { generateAll } from '../../src/generate/index.js';
import { Checkpoint, saveSafetensors } from '../../src/io/index.js';
import { parseQwen2VLConfig } from '../../src/models/qwen2vl/config.js';
import { qwen2vlSpecs } from '../../src/models/qwen2vl/weights.js';
import { Vamba } from '../../src/models/vamba/model.js';
import { VambaVideoHandle } from '../../src/models/vamba/video-handle.js';
import { vambaParamCount } from '../../src/models/vamba/weights.js';
import { countParams } from '../../src/nn/params.js';
import { configJson } from './config-fixtures.js';
import { teacherForcedLogits } from './parity.js';
import { readReference, relErr, VAMBA_FIXTURES, type VambaReference } from './vamba-fixtures.js';

const be = cpuBackend();

async function allLogits(model: Vamba, handle: VambaVideoHandle, ids: number[]): Promise<Float32Array> {
  using cache = model.lm.newCache();
  const t = model.lm.forward(ids, handle.kvs, cache);
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

async function greedy(model: Vamba, handle: VambaVideoHandle, ids: number[], n: number) {
  using session = model.session(handle);
  return (await generateAll(session, ids, { maxNewTokens: n })).tokens;
}

for (const name of ['tiny-a', 'tiny-b'])
  describe(`Vamba ${name} vs the PyTorch reference`, () => {
    let model: Vamba;
    let ref: VambaReference;
    let handle: VambaVideoHandle;
    before(async () => {
      model = await Vamba.load(join(VAMBA_FIXTURES, name), { backend: be });
      ref = await readReference(name);
      handle = model.encodeVideo(ref.pixelValues, ref.grid, { chunkLen: 16 });
    });
    after(() => {
      handle[Symbol.dispose]();
      model[Symbol.dispose]();
    });

    it('logits of the whole prompt within 1e-4', async () => {
      const err = relErr(await allLogits(model, handle, ref.inputIds), ref.logits);
      assert.ok(err <= 1e-4, `relative error ${err.toExponential(2)}`);
    });

    it('greedy generation with the KV cache gives the same tokens and step logits', async () => {
      assert.deepEqual(await greedy(model, handle, ref.inputIds, ref.greedyTokens.length), ref.greedyTokens);
      using session = model.session(handle);
      const steps = await teacherForcedLogits(session, ref.inputIds, ref.greedyTokens);
      const err = relErr(steps, ref.stepLogits);
      assert.ok(err <= 1e-4, `step logits relative error ${err.toExponential(2)}`);
    });

    it('chunked encoding (video tokens and vision groups) equals one-shot encoding', async () => {
      using once = model.encodeVideo(ref.pixelValues, ref.grid, {
        chunkLen: 1 << 20,
        maxPatchesPerChunk: 1 << 20,
      });
      using chunked = model.encodeVideo(ref.pixelValues, ref.grid, { chunkLen: 5, maxPatchesPerChunk: 1 });
      assert.ok(once.tokens >= 32);
      for (let i = 0; i < once.kvs.length; i++)
        for (const part of ['k', 'v'] as const) {
          const err = relErr(await chunked.kvs[i][part].data(), await once.kvs[i][part].data());
          assert.ok(err <= 1e-5, `layer ${i} ${part}: ${err.toExponential(2)}`);
        }
    });
  });

describe('encode once, ask many', () => {
  let model: Vamba;
  let ref: VambaReference;
  let dir: string;
  before(async () => {
    model = await Vamba.load(join(VAMBA_FIXTURES, 'tiny-a'), { backend: be });
    ref = await readReference('tiny-a');
    dir = await mkdtemp(join(tmpdir(), 'vamba-handle-'));
  });
  after(async () => {
    model[Symbol.dispose]();
    await rm(dir, { recursive: true, force: true });
  });

  it('a saved and reloaded handle answers exactly like a fresh encode', async () => {
    using fresh = model.encodeVideo(ref.pixelValues, ref.grid, {
      key: { video: 'sha256:test', sampling: 'uniform:6' },
    });
    const path = join(dir, 'video.safetensors');
    await fresh.save(path);
    using loaded = await VambaVideoHandle.load(path, be, fresh.key);
    assert.equal(loaded.tokens, fresh.tokens);
    assert.deepEqual(loaded.grid, fresh.grid);
    const a = await allLogits(model, fresh, ref.inputIds);
    const b = await allLogits(model, loaded, ref.inputIds);
    assert.deepEqual(b, a);
    // Two different questions on one handle: no video work, each matches its own fresh answer.
    const other = [...ref.inputIds.slice(0, 10), 7, 8, 9, ...ref.inputIds.slice(10)];
    assert.deepEqual(await greedy(model, loaded, other, 4), await greedy(model, fresh, other, 4));
    assert.deepEqual(await greedy(model, loaded, ref.inputIds, 6), ref.greedyTokens);
  });

  it('a handle with another key is refused, naming the differing fields', async () => {
    using fresh = model.encodeVideo(ref.pixelValues, ref.grid, {
      key: { video: 'sha256:aaa', sampling: 'uniform:6' },
    });
    const path = join(dir, 'keyed.safetensors');
    await fresh.save(path);
    await assert.rejects(
      VambaVideoHandle.load(path, be, { ...fresh.key, video: 'sha256:bbb' }),
      (e: unknown) => e instanceof InputError && /video: "sha256:bbb" ≠ "sha256:aaa"/.test(e.message),
    );
    await assert.rejects(
      VambaVideoHandle.load(path, be, { ...fresh.key, sampling: 'uniform:512', dtype: 'bf16' }),
      (e: unknown) => e instanceof InputError && /dtype/.test(e.message) && /sampling/.test(e.message),
    );
    await writeFile(join(dir, 'other.safetensors'), '');
    await assert.rejects(VambaVideoHandle.load(join(dir, 'other.safetensors'), be, fresh.key));
  });

  it('a handle from another model is refused by session()', () => {
    using fresh = model.encodeVideo(ref.pixelValues, ref.grid);
    const foreign = new VambaVideoHandle(fresh.kvs, { ...fresh.key, model: 'another-model' }, fresh.grid);
    assert.throws(() => model.session(foreign), InputError);
  });

  it('out-of-vocabulary ids are an InputError, not a wrong answer', () => {
    using fresh = model.encodeVideo(ref.pixelValues, ref.grid);
    using session = model.session(fresh);
    assert.throws(() => session.prefill([1, 2, ref.vocab]), InputError);
    assert.throws(() => session.step(1), InputError);
  });

  it('the pixel hash keys a video when no content hash is given', () => {
    using a = model.encodeVideo(ref.pixelValues, ref.grid);
    const changed = ref.pixelValues.slice();
    changed[0] += 1;
    using b = model.encodeVideo(changed, ref.grid);
    assert.notEqual(a.key.video, b.key.video);
    assert.equal(a.key.model, model.modelId);
  });
});

describe('Vamba loading', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vamba-load-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  async function variant(name: string, edit: (t: Map<string, unknown>) => void): Promise<string> {
    const d = join(dir, name);
    await cp(join(VAMBA_FIXTURES, 'tiny-a'), d, { recursive: true });
    await rm(join(d, 'reference.safetensors'));
    const ck = await Checkpoint.open(join(VAMBA_FIXTURES, 'tiny-a', 'model.safetensors'));
    const tensors = new Map<string, unknown>();
    for (const n of ck.names()) tensors.set(n, await ck.read(n));
    await ck.close();
    edit(tensors);
    await saveSafetensors(join(d, 'model.safetensors'), tensors as never);
    return d;
  }

  it('a missing and an unexpected tensor are a ModelError naming both', async () => {
    const d = await variant('broken', (t) => {
      t.set('model.layers.0.cross_attn.extra.weight', t.get('model.layers.0.alpha'));
      t.delete('model.layers.1.vision_mixer.mixer.dt_bias');
    });
    await assert.rejects(
      Vamba.load(d, { backend: be }),
      (e: unknown) =>
        e instanceof ModelError &&
        e.message.includes('model.layers.1.vision_mixer.mixer.dt_bias') &&
        e.message.includes('model.layers.0.cross_attn.extra.weight'),
    );
  });

  it('a wrong shape is a ModelError', async () => {
    const d = await variant('shape', (t) => {
      t.set(
        'model.layers.0.vision_mixer.mixer.A_log',
        t.get('model.layers.0.vision_mixer.mixer.norm.weight'),
      );
    });
    await assert.rejects(
      Vamba.load(d, { backend: be }),
      (e: unknown) => e instanceof ModelError && /A_log is \[/.test(e.message),
    );
  });

  it('Vamba tensors under a config without the Vamba fields are refused with the reason', async () => {
    const d = await variant('plain-config', () => {});
    const cfg = JSON.parse(await (await import('node:fs/promises')).readFile(join(d, 'config.json'), 'utf8'));
    delete cfg.vision_mamba_mixer_config;
    delete cfg.use_alpha_balancing;
    await writeFile(join(d, 'config.json'), JSON.stringify(cfg));
    await assert.rejects(
      Vamba.load(d, { backend: be }),
      (e: unknown) => e instanceof ModelError && /lacks the Vamba fields/.test(e.message),
    );
  });

  it('the published config has 11,309,837,020 parameters (8,291,375,616 of them Qwen2-VL)', () => {
    // Qwen2-VL-7B-Instruct's config.json plus the fields Vamba adds (research/vamba.md §3.3).
    const config = parseQwen2VLConfig({
      ...configJson('qwen2vl-7b-instruct'),
      use_alpha_balancing: true,
      cross_attn_use_position_embeddings: false,
      cross_attn_use_layer_norm: false,
      vision_mamba_mixer_config: { enable: true },
    });
    assert.equal(vambaParamCount(config), 11_309_837_020);
    assert.equal(countParams(qwen2vlSpecs(config)), 8_291_375_616);
  });
});
