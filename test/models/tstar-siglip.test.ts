/**
 * TSTAR with SigLIP as its vision tower (either parameter layout) and with Nemotron-H as its LLM, configured by one
 * config.json: the tower inside TSTAR gives exactly what src/models/siglip's own forward gives on the same weights,
 * each frame's patches are one group of the compressor, and a clip comes out as frames·patches/k tokens through
 * the runner and the facade's usage.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { ModelError } from '../../src/errors.js';
import type { JsonObject } from '../../src/io/json-fields.js';
import { SiglipVision } from '../../src/models/siglip/model.js';
import { parseTstarConfig } from '../../src/models/tstar/config.js';
import { tstar } from '../../src/models/tstar/family.js';
import { Tstar } from '../../src/models/tstar/model.js';
import { loadTstarRunner } from '../../src/models/tstar/runner.js';
import { ParamStore } from '../../src/nn/params.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { randn, rng } from '../helpers.js';
import { randomHost, tinySiglip, tinyTstarJson, writeTinyTstar } from './tiny-tstar.js';

const be = cpuBackend();
const K = 4; // the tiny compressor's k
const PATCHES = 16; // 32×32 frames of 8×8 patches

/** TSTAR's tiny config with a SigLIP tower; the Nemotron-H LLM reads the needle tokenizer's placeholder (6). */
function siglipJson(layout: 'hf' | 'timm', text: 'qwen2' | 'nemotron_h' = 'qwen2'): JsonObject {
  const json = tinyTstarJson(text);
  return { ...json, vision_config: tinySiglip(layout), video_token_id: 6 };
}

const tensorsOf = (host: ReturnType<typeof randomHost>, keep: (name: string) => string | null) =>
  new ParamStore(
    [...host].flatMap(([name, h]): [string, Tensor][] => {
      const to = keep(name);
      return to === null ? [] : [[to, ops.tensor(be, h.values, h.shape)]];
    }),
  );

describe('TSTAR config with a SigLIP tower', () => {
  it('reads the tower, its layout and feature block, and chains the widths', () => {
    const c = parseTstarConfig(siglipJson('timm', 'nemotron_h'));
    assert.equal(c.vision.kind, 'siglip');
    if (c.vision.kind !== 'siglip') return;
    assert.deepEqual([c.vision.layout, c.vision.featureBlock, c.vision.width], ['timm', 2, 48]);
    assert.equal(c.text.kind, 'nemotron_h');
    const block = parseTstarConfig({
      ...siglipJson('hf'),
      vision_config: { ...tinySiglip('hf'), vision_feature_block: -2 },
    });
    assert.equal(block.vision.kind === 'siglip' && block.vision.featureBlock, 1);
  });

  it('refuses a layout, a block or a width that does not fit, naming the key', () => {
    const bad = (vision: object) => () => parseTstarConfig({ ...siglipJson('hf'), vision_config: vision });
    assert.throws(bad({ ...tinySiglip('hf'), vision_layout: 'open_clip' }), /vision_layout.*"hf" or "timm"/);
    assert.throws(bad({ ...tinySiglip('hf'), vision_feature_block: 3 }), /block 3 does not exist/);
    assert.throws(
      bad({ ...tinySiglip('hf'), hidden_size: 64 }),
      (e: unknown) =>
        e instanceof ModelError && /input_size 48 ≠ the vision tower's output width/.test(`${e}`),
    );
    assert.throws(bad({ model_type: 'clip_vision_model' }), /"qwen2_vl" or "siglip_vision_model"/);
  });
});

for (const layout of ['hf', 'timm'] as const) {
  describe(`SigLIP (${layout} layout) inside TSTAR`, () => {
    it('gives the tokens src/models/siglip gives on the same weights, one group per frame', async () => {
      const config = parseTstarConfig(siglipJson(layout));
      const v = config.vision;
      assert.equal(v.kind, 'siglip');
      if (v.kind !== 'siglip') return;
      const host = randomHost(config, 3);
      using model = Tstar.fromParams(
        config,
        tensorsOf(host, (n) => n),
        be,
        'f32',
      );
      const prefix = layout === 'hf' ? 'vision_tower.vision_model.' : 'vision_tower.';
      using own = SiglipVision.load(
        tensorsOf(host, (n) => (n.startsWith(prefix) ? n.slice(prefix.length) : null)),
        v.config,
        layout,
        v.featureBlock,
      );
      using pixels = ops.tensor(be, randn(3 * 3 * 32 * 32, rng(5), -1, 1), [3, 3, 32, 32]);
      using ours = model.encodeFrames(pixels);
      using want = own.forward(pixels);
      assert.deepEqual(ours.shape, [3, PATCHES, 48]);
      assert.deepEqual(Array.from(await ours.data()), Array.from(await want.data()));
      using compressed = model.compressGroups(ours);
      assert.deepEqual(compressed.shape, [(3 * PATCHES) / K, config.hidden_size]);
    });
  });
}

describe('TSTAR runner with SigLIP and Nemotron-H (tiny checkpoint)', () => {
  let dir = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tstar-siglip-'));
    await writeTinyTstar(dir, 2, siglipJson('hf', 'nemotron_h'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('encodes frames of any size to frames·patches/k tokens and answers with them in usage', async () => {
    const config = parseTstarConfig(siglipJson('hf', 'nemotron_h'));
    const opened = await tstar.open(
      { dir, config: siglipJson('hf', 'nemotron_h'), tensorNames: [] },
      { parameters: 0, weightBytes: 0, dtype: 'F32' },
    );
    const estimate = opened.estimateMemory({ frames: 5, width: 90, height: 60, activationBytes: 4 });
    assert.equal(estimate.videoTokens, (5 * PATCHES) / K);
    const runner = await loadTstarRunner(
      { id: dir, dir, config, weights: { parameters: 0, weightBytes: 0, dtype: 'F32' } },
      be,
    );
    try {
      const n = 5;
      const video = await runner.encode(
        (async function* () {
          yield Array.from({ length: n }, (_, i) => ({
            index: i,
            timestampSec: i,
            width: 90,
            height: 60,
            data: Uint8Array.from({ length: 90 * 60 * 3 }, (_, j) => (i * 37 + j * 11) % 256),
          }));
        })(),
        {
          kind: 'video',
          timestampsSec: Array.from({ length: n }, (_, i) => i),
          sampling: { sampling: 'uniform', frames: n, fps: 1, maxEdge: 90, minEdge: 32 },
        },
      );
      assert.equal(video.tokens, (n * PATCHES) / K);
      const gen = runner.generate([{ role: 'user', content: 'what is it?' }], video, { maxNewTokens: 2 });
      let r = await gen.next();
      while (!r.done) r = await gen.next();
      assert.equal(r.value.usage.videoTokens, (n * PATCHES) / K);
      assert.ok(r.value.usage.completionTokens >= 1);
      video.dispose();
    } finally {
      runner.dispose();
    }
  });
});
