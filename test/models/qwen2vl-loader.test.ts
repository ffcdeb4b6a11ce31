// Loading Qwen2-VL checkpoints: bf16 weights, and clear errors for checkpoints that do not match the config.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { InputError, ModelError } from '../../src/errors.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import type { HostTensor } from '../../src/io/convert.js';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { Qwen2VL } from '../../src/models/qwen2vl/model.js';
import { fromF32 } from '../../src/runtime/dtype.js';
import { FIXTURES, readArrays, readJson, relErr } from './qwen2vl-fixtures.js';

const cpu = cpuBackend();
const SRC = join(FIXTURES, 'tiny-a');

/** Copies tiny-a into a temp dir as one safetensors file, after `edit` changes its tensors. */
async function variant(edit: (t: Map<string, HostTensor>) => void): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'qwen2vl-'));
  const ck = await Checkpoint.open(SRC);
  const tensors = new Map<string, HostTensor>();
  for (const n of ck.names()) tensors.set(n, await ck.read(n));
  await ck.close();
  edit(tensors);
  await saveSafetensors(join(dir, 'model.safetensors'), tensors);
  for (const f of ['config.json', 'generation_config.json']) await copyFile(join(SRC, f), join(dir, f));
  return dir;
}

test('bf16 checkpoint loads as f32 on the CPU and stays within bf16 rounding of the reference', async () => {
  const dir = await variant((ts) => {
    for (const [n, t] of ts)
      ts.set(n, {
        dtype: 'BF16',
        shape: t.shape,
        data: fromF32('bf16', t.data as Float32Array) as Uint16Array,
      });
  });
  try {
    const model = await Qwen2VL.load(dir, { backend: cpu });
    assert.equal(model.dtype, 'f32');
    assert.equal(model.model.embed_tokens.dtype, 'f32');
    const meta = await readJson(join(SRC, 'reference.json'));
    const ref = await readArrays(join(SRC, 'reference.safetensors'));
    const logits = model.forward({ inputIds: meta.prompts.text.input_ids });
    const err = relErr(await logits.data(), ref.get('text.logits')!.data);
    assert.ok(err > 0 && err < 5e-2, `bf16 weights: relative error ${err}`);
    logits.dispose();
    model[Symbol.dispose]();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a checkpoint with missing, unexpected or misshapen tensors is a ModelError that lists them', async () => {
  const dir = await variant((ts) => {
    ts.delete('model.layers.1.mlp.up_proj.weight');
    ts.delete('visual.blocks.0.attn.qkv.bias');
    ts.set('model.layers.9.extra.weight', ts.get('model.norm.weight')!);
    const n = ts.get('model.norm.weight')!;
    ts.set('model.norm.weight', { ...n, shape: [n.shape[0] / 2, 2] });
  });
  try {
    await assert.rejects(Qwen2VL.load(dir, { backend: cpu }), (e: unknown) => {
      assert.ok(e instanceof ModelError);
      assert.match(e.message, /2 missing: .*visual\.blocks\.0\.attn\.qkv\.bias/);
      assert.match(e.message, /model\.layers\.1\.mlp\.up_proj\.weight/);
      assert.match(e.message, /1 unexpected: model\.layers\.9\.extra\.weight/);
      assert.match(e.message, /model\.norm\.weight is \[32, 2\], expected \[64\]/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a prompt whose pad tokens do not match the pixels is an InputError', async () => {
  const model = await Qwen2VL.load(SRC, { backend: cpu });
  const video = model.config.video_token_id;
  const isInputError = (re: RegExp) => (e: unknown) => e instanceof InputError && re.test(e.message);
  assert.throws(() => model.forward({ inputIds: [1, video, 2] }), isInputError(/video/));
  assert.throws(() => model.embed({ inputIds: [1, video, 2] }), isInputError(/no video was given/));
  assert.throws(() => model.forward({ inputIds: [1, 99999] }), isInputError(/outside the vocabulary/));
  const session = model.session();
  assert.throws(() => session.step(3), /prefill first/);
  session[Symbol.dispose]();
  model[Symbol.dispose]();
});
