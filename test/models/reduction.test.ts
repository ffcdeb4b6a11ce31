/**
 * Token reduction as a user choice (models/reduction.ts): parsing the choice, which models can take which
 * strategy and what they are told otherwise, the uniform drop's rows, and Qwen2-VL's positions for the kept rows.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { UsageError } from '../../src/errors.js';
import type { ModelRunner } from '../../src/models/family.js';
import { readQwen2VLConfig } from '../../src/models/qwen2vl/config.js';
import { getRopeIndex } from '../../src/models/qwen2vl/rope-index.js';
import { loadQwen2VLRunner } from '../../src/models/qwen2vl/runner.js';
import {
  parseReduction,
  resolveReduction,
  tokenReductions,
  uniformRows,
} from '../../src/models/reduction.js';
import * as ops from '../../src/runtime/ops.js';
import { writeTinyQwen2VL } from '../facade/tiny-models.js';

const be = cpuBackend();

describe('token reduction choices', () => {
  it('parses METHOD and METHOD:KEEP, and refuses anything else', () => {
    assert.deepEqual(parseReduction('uniform'), { method: 'uniform' });
    assert.deepEqual(parseReduction('uniform:0.25'), { method: 'uniform', keep: 0.25 });
    for (const bad of ['uniform:0', 'uniform:1.5', 'tome:x', 'a:0.5:1'])
      assert.throws(() => parseReduction(bad), UsageError, bad);
  });

  it('lists none, uniform, ToMe, TransV and MambaMia', () => {
    assert.deepEqual(
      tokenReductions().map((r) => r.name),
      ['none', 'uniform', 'tome', 'transv', 'mambamia'],
    );
  });

  it('resolves what a model takes and says why otherwise', () => {
    assert.equal(resolveReduction(undefined, 'qwen2_vl', ['uniform']), null);
    assert.equal(resolveReduction({ method: 'none' }, 'vamba', []), null);
    const u = resolveReduction({ method: 'uniform' }, 'qwen2_vl', ['uniform']);
    assert.deepEqual([u?.reduction.name, u?.keep], ['uniform', 0.5]);
    assert.throws(
      () => resolveReduction({ method: 'pool' }, 'qwen2_vl', ['uniform']),
      /no token reduction "pool" \(choices: none, uniform, tome, transv, mambamia\)/,
    );
    assert.throws(
      () => resolveReduction({ method: 'transv' }, 'qwen2_vl', ['uniform']),
      /valid only for timeviper models/,
    );
    assert.throws(
      () => resolveReduction({ method: 'mambamia' }, 'qwen2_vl', ['uniform']),
      (e: unknown) =>
        e instanceof UsageError && /needs a MambaMia compressor trained for this model’s LLM/.test(e.message),
    );
    assert.equal(
      resolveReduction({ method: 'mambamia' }, 'tstar', ['mambamia', 'uniform'])?.reduction.name,
      'mambamia',
    );
    assert.equal(
      resolveReduction({ method: 'tome', keep: 0.25 }, 'qwen2_vl', ['uniform', 'tome'])?.keep,
      0.25,
    );
    assert.throws(
      () => resolveReduction({ method: 'transv' }, 'timeviper', []),
      /transv needs a checkpoint trained with TransV’s stages .*; this timeviper model has none/,
    );
    assert.throws(
      () => resolveReduction({ method: 'uniform' }, 'vamba', []),
      /vamba models take none, not uniform/,
    );
  });
});

describe('uniform drop', () => {
  it('keeps evenly spaced tokens of each frame, the middle of each stride', () => {
    assert.deepEqual(uniformRows(10, 0.3), [1, 5, 8]);
    assert.deepEqual(uniformRows(4, 1), [0, 1, 2, 3]);
    assert.deepEqual(uniformRows(5, 0.01), [2]);
  });

  it('gathers those rows frame by frame and names their sources', async () => {
    const uniform = tokenReductions().find((r) => r.name === 'uniform')!;
    using x = ops.tensor(
      be,
      Array.from({ length: 16 }, (_, i) => i),
      [2, 4, 2],
    );
    const r = await uniform.reduce!(x, 0.5);
    using t = r.tokens;
    assert.deepEqual(r.source, [[1], [3], [5], [7]]);
    assert.deepEqual(Array.from(await t.data()), [2, 3, 6, 7, 10, 11, 14, 15]);
  });
});

describe('ToMe as a reduction', () => {
  it('merges the most similar pair of a frame and names the merged rows as one source', async () => {
    const tome = tokenReductions().find((r) => r.name === 'tome')!;
    // Tokens 0 and 1 equal, 2 and 3 orthogonal to them and each other (width 20: the metric is the whole feature).
    const e = (i: number, v = 1) => Array.from({ length: 20 }, (_, j) => (j === i ? v : 0));
    using x = ops.tensor(be, [...e(0, 2), ...e(0, 2), ...e(1), ...e(2)], [1, 4, 20]);
    const r = await tome.reduce!(x, 0.75);
    using t = r.tokens;
    // The official order: unmerged A tokens (even positions), then every B token (odd positions).
    assert.deepEqual(r.source, [[2], [0, 1], [3]]);
    assert.deepEqual(Array.from(await t.data()), [...e(1), ...e(0, 2), ...e(2)]);
  });
});

describe('Qwen2-VL positions of a reduced video', () => {
  it('puts each kept token at its grid position and continues after the whole grid', () => {
    const ids = [7, 9, 9, 9, 8, 7];
    // One video of grid [2, 4, 4] (2 groups of 2×2 merged tokens); rows 1, 2 and 7 kept.
    const r = getRopeIndex(ids, { image_token_id: 5, video_token_id: 9 }, [], [[2, 4, 4]], 2, [1, 2, 7]);
    assert.deepEqual(Array.from(r.positions[0]), [0, 1, 1, 2, 3, 4]);
    assert.deepEqual(Array.from(r.positions[1]), [0, 1, 2, 2, 3, 4]);
    assert.deepEqual(Array.from(r.positions[2]), [0, 2, 1, 2, 3, 4]);
    assert.equal(r.ropeDelta, 5 - 6);
  });
});

describe('Qwen2-VL runner with a token reduction (tiny random model)', () => {
  let dir = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'reduce-qwen2vl-'));
    await writeTinyQwen2VL(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const frames = async function* () {
    yield Array.from({ length: 4 }, (_, i) => ({
      index: i,
      timestampSec: i,
      width: 56,
      height: 56,
      data: Uint8Array.from({ length: 56 * 56 * 3 }, (_, j) => (i * 29 + j * 7) % 256),
    }));
  };
  const uniform = tokenReductions().find((r) => r.name === 'uniform')!;
  const encodeAndAsk = async (runner: ModelRunner, keep: number | null) => {
    const video = await runner.encode(frames(), {
      kind: 'video',
      timestampsSec: [0, 1, 2, 3],
      sampling: { sampling: 'uniform', frames: 4, fps: 1, maxEdge: 56, minEdge: 56 },
      reduction: keep === null ? null : { reduction: uniform, keep },
    });
    try {
      const gen = runner.generate([{ role: 'user', content: 'what' }], video, { maxNewTokens: 4 });
      let text = '';
      let r = await gen.next();
      while (!r.done) {
        text += r.value;
        r = await gen.next();
      }
      return { text, usage: r.value.usage, tokens: video.tokens };
    } finally {
      video.dispose();
    }
  };

  it('keeping every token answers as without a reduction; keeping half halves the video tokens', async () => {
    const config = await readQwen2VLConfig(dir);
    const runner = await loadQwen2VLRunner(
      { id: dir, dir, config, weights: { parameters: 0, weightBytes: 0, dtype: 'F32' } },
      be,
    );
    try {
      assert.deepEqual(runner.reductions, ['uniform', 'tome']);
      const plain = await encodeAndAsk(runner, null);
      const all = await encodeAndAsk(runner, 1);
      assert.deepEqual(all, plain);
      const half = await encodeAndAsk(runner, 0.5);
      assert.equal(half.tokens, plain.tokens / 2);
      assert.equal(half.usage.videoTokens, plain.tokens / 2);
      assert.equal(half.usage.promptTokens, plain.usage.promptTokens);
    } finally {
      runner.dispose();
    }
  });
});
