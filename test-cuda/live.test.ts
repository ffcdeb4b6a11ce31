// Live video on the GPU: a video appended in pieces of 1, 7 and 64 frames gives the logits of the same video
// encoded at once (test/live/append-cases.ts), in f32 and bf16, for Vamba and Qwen2-VL on the shipped needle
// models and tiny random configs. f32 differs only by the order of GPU sums; bf16 by its rounding of the
// pieces' activations (the bound of models.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  PIECES,
  qwen2vlErrors,
  vambaErrors,
  writeRandomQwen2VL,
  writeRotatedVamba,
} from '../test/live/append-cases.js';
import { gpu } from './helpers.js';

const TOL = { f32: 1e-4, bf16: 5e-2 } as const;

const dir = mkdtempSync(join(tmpdir(), 'longshot-cuda-live-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cases = [
  ['Vamba, the shipped needle model', () => 'models/needle-vamba-tiny', vambaErrors, 112],
  [
    'Vamba, rotated cross-attention keys',
    async () => {
      await writeRotatedVamba(join(dir, 'vamba'));
      return join(dir, 'vamba');
    },
    vambaErrors,
    56,
  ],
  ['Qwen2-VL, the shipped needle model', () => 'models/needle-qwen2vl-tiny', qwen2vlErrors, 112],
  [
    'Qwen2-VL, a tiny random config',
    async () => {
      await writeRandomQwen2VL(join(dir, 'qwen'));
      return join(dir, 'qwen');
    },
    qwen2vlErrors,
    56,
  ],
] as const;

for (const dtype of ['f32', 'bf16'] as const)
  describe(`live video on the GPU in ${dtype}: appended in pieces equals encoded at once`, () => {
    for (const [name, model, errorsOf, side] of cases)
      test(name, async (t) => {
        const errors = await errorsOf(await model(), side, side, gpu, dtype);
        t.diagnostic(
          `relative logit errors for pieces of ${PIECES.join(', ')}: ${errors.map((e) => e.toExponential(2)).join(', ')}`,
        );
        for (const [i, err] of errors.entries())
          assert.ok(err <= TOL[dtype], `pieces of ${PIECES[i]}: relative logit error ${err}`);
      });
  });
