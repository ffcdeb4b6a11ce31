/**
 * Vamba stage 1 from a Qwen2-VL checkpoint: `initCrossAttentionFromSelfAttention` builds the Vamba with each
 * cross-attention copied from its layer's self-attention, the stage-1 patterns train only the new layers, and
 * every other tensor of the checkpoint written comes out bit-identical to the Qwen2-VL source.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { hasVambaTensors } from '../../src/models/vamba/config.js';
import { needleTokenizerConfig, needleTokenizerJson } from '../../src/needle/tokenizer.js';
import { getBackend } from '../../src/runtime/device.js';
import { autogradEngine } from '../../src/train/engine.js';
import { train } from '../../src/train/trainer.js';
import { dropVambaFields } from '../helpers.js';
import { VAMBA_FIXTURES } from '../models/vamba-fixtures.js';
import { tinyRecipe } from './tiny.js';

test('stage 1: cross-attention starts as self-attention; only the new layers change', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'longshot-stage1-'));
  try {
    // A Qwen2-VL checkpoint: the tiny Vamba fixture without its Vamba tensors and config fields.
    const src = join(dir, 'qwen2vl');
    await cp(join(VAMBA_FIXTURES, 'tiny-a'), src, { recursive: true });
    await rm(join(src, 'reference.safetensors'));
    const cfg = JSON.parse(await readFile(join(src, 'config.json'), 'utf8'));
    dropVambaFields(cfg);
    await writeFile(join(src, 'config.json'), JSON.stringify(cfg));
    await writeFile(join(src, 'tokenizer.json'), JSON.stringify(needleTokenizerJson(1)));
    await writeFile(join(src, 'tokenizer_config.json'), JSON.stringify(needleTokenizerConfig()));
    const ck = await Checkpoint.open(join(VAMBA_FIXTURES, 'tiny-a'));
    const source = new Map();
    for (const n of ck.names()) if (!hasVambaTensors([n])) source.set(n, await ck.read(n));
    await ck.close();
    await saveSafetensors(join(src, 'model.safetensors'), source);

    const base = tinyRecipe((j) => {
      j.schedule = { steps: 1, warmup: 0, minRatio: 0 };
      j.output = { dir: 'x', logEvery: 1, evalEvery: 1000 };
      j.optimizer.lr = 1e-12; // a step that moves nothing measurable: the initialisation shows
      j.train = ['model.layers.*.cross_attn.**', 'model.layers.*.vision_mixer.**'];
      delete j.data.eval;
    });
    const recipe = {
      ...base,
      model: { ...base.model, from: src, config: null, initCrossAttentionFromSelfAttention: true },
    };
    const r = await train({ recipe, backend: await getBackend('cpu'), engine: autogradEngine });
    const out = await Checkpoint.open(r.checkpoint);
    try {
      const read = async (n: string) => (await out.read(n)).data as Float32Array;
      let crossChecked = 0;
      for (const n of out.names()) {
        const got = await read(n);
        if (n.includes('.cross_attn.')) {
          const self = source.get(n.replace('.cross_attn.', '.self_attn.')).data as Float32Array;
          got.forEach((x, i) => {
            assert.ok(Math.abs(x - self[i]) < 1e-6, n);
          });
          crossChecked++;
        } else if (source.has(n)) assert.deepEqual(got, source.get(n).data, `${n} was frozen`);
      }
      assert.equal(crossChecked, 2 * 7); // q/k/v weights and biases, o weight, per layer
      const trainableNames = out.names().filter((n) => /\.(cross_attn|vision_mixer)\./.test(n));
      const size = (n: string) => out.info(n).shape.reduce((a, d) => a * d, 1);
      assert.equal(
        r.trainable,
        trainableNames.reduce((a, n) => a + size(n), 0),
      );
    } finally {
      await out.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
