/**
 * `convert-timeviper` on tiny parts: the fixture's timm-layout SigLIP and the tiny Nemotron-H (nano-like, blocks
 * M-M*-M-MM-) with its tokenizer. The result loads as TimeViper; the vision and LLM tensors are copied under
 * the official prefixes; TransV's cross-attentions come from the nearest self-attention (block 3 for stages at 1
 * and 3), α = 0; the tokenizer gains `<image>` after its last id and config.json names it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { saveSafetensors } from '../../src/io/safetensors-write.js';
import { parseTimeViperConfig } from '../../src/models/timeviper/config.js';
import { convertTimeViper } from '../../src/models/timeviper/convert.js';
import { TimeViperModel } from '../../src/models/timeviper/model.js';
import { loadTimeViperRunner } from '../../src/models/timeviper/runner.js';
import { writeTinyNemotronH } from './tiny-nemotron-h.js';

const root = mkdtempSync(join(tmpdir(), 'timeviper-convert-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('convert-timeviper', () => {
  it('assembles a loadable TimeViper with TransV copied from the nearest attention', async () => {
    const siglip = join(root, 'siglip.safetensors');
    {
      await using f = await SafetensorsFile.open(
        join(import.meta.dirname, '..', 'fixtures', 'timeviper', 'siglip.safetensors'),
      );
      const tensors = [];
      for (const n of f.names().filter((n) => n.startsWith('timm.')))
        tensors.push([n.slice(5), await f.read(n)] as const);
      await saveSafetensors(siglip, tensors);
    }
    const llm = join(root, 'llm');
    mkdirSync(llm);
    writeTinyNemotronH(llm);
    const out = join(root, 'out');
    const r = await convertTimeViper(siglip, llm, out, {
      pdropType: 'uni_1_0.5-attn_3_0.25',
      initMergeFromAttention: true,
      imageSize: 30,
      visionHeads: 4,
    });
    assert.equal(r.imageTokenId, 308); // the tiny tokenizer's last id is 307
    const json = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    assert.equal(json.image_token_index, 308);
    const config = parseTimeViperConfig(json);
    assert.equal(config.featureBlock, 2);
    assert.deepEqual(
      config.stages.map((s) => s.transfer),
      [true, true],
    );
    await using ck = await Checkpoint.open(out);
    await using src = await Checkpoint.open(llm);
    const same = async (a: string, b: string) =>
      assert.deepEqual(
        Array.from((await ck.read(a)).data as Uint16Array),
        Array.from((await src.read(b)).data as Uint16Array),
        a,
      );
    for (const stage of [0, 1])
      for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj'])
        await same(
          `llm_backbone.llm.backbone.merge_modules.${stage}.${p}.weight`,
          `backbone.layers.3.mixer.${p}.weight`,
        );
    await same('llm_backbone.llm.lm_head.weight', 'lm_head.weight');
    assert.ok(ck.has('vision_backbone.featurizer.norm.weight')); // the unused final norm travels too
    using alpha = await ck.loadTensor(cpuBackend(), 'llm_backbone.llm.backbone.alpha', { dtype: 'f32' });
    assert.deepEqual(await alpha.toArray(), [0, 0]);
    using proj = await ck.loadTensor(cpuBackend(), 'projector.projector.2.bias', { dtype: 'f32' });
    const bound = 1 / Math.sqrt(config.llm.hidden_size);
    assert.ok((await proj.toArray()).every((v) => Math.abs(v) <= bound + 1e-6));
    using model = await TimeViperModel.load(out, cpuBackend(), 'f32');
    assert.equal(model.lm.gates.length, 2);
    const runner = await loadTimeViperRunner(
      {
        id: 'converted',
        dir: out,
        config,
        weights: { parameters: r.parameters, weightBytes: r.bytes, dtype: 'F32' },
      },
      cpuBackend(),
    );
    runner.dispose();
  });
});
