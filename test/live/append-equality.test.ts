/**
 * A live video appended in pieces of 1, 7 and 64 frames gives the logits of the same video encoded at once
 * (CPU, f32, ≤ 1e-5 relative to the largest logit), for every family that grows videos: Vamba (Mamba states
 * carried, cross-attention K/V appended; with and without position embeddings on the cross-attention keys)
 * and Qwen2-VL (positions continued, KV appended), on the shipped needle models and tiny random configs.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { scratch } from '../media/fixtures.js';
import { PIECES, qwen2vlErrors, vambaErrors, writeRandomQwen2VL, writeRotatedVamba } from './append-cases.js';

const cpu = cpuBackend();

function assertEqualLogits(errors: number[]): void {
  for (const [i, err] of errors.entries())
    assert.ok(err <= 1e-5, `pieces of ${PIECES[i]}: relative logit error ${err}`);
}

describe('live video: appended in pieces equals encoded at once', () => {
  let dir: string;
  before(() => {
    dir = scratch();
  });

  it('Vamba, the shipped needle model', async () =>
    assertEqualLogits(await vambaErrors('models/needle-vamba-tiny', 112, 112, cpu)));

  it('Vamba, a tiny random config with rotated and normalised cross-attention keys', async () => {
    await writeRotatedVamba(join(dir, 'vamba'));
    assertEqualLogits(await vambaErrors(join(dir, 'vamba'), 84, 56, cpu));
  });

  it('Qwen2-VL, the shipped needle model', async () =>
    assertEqualLogits(await qwen2vlErrors('models/needle-qwen2vl-tiny', 112, 112, cpu)));

  it('Qwen2-VL, a tiny random config', async () => {
    await writeRandomQwen2VL(join(dir, 'qwen'));
    assertEqualLogits(await qwen2vlErrors(join(dir, 'qwen'), 84, 56, cpu));
  });
});
