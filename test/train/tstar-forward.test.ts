/**
 * The TSTAR training forward (src/train/tstar.ts) computes what the TSTAR family's inference computes: on tiny
 * random checkpoints with either LLM (Qwen2; Nemotron-H through its whole-sequence path), the teacher-forced
 * logits rows equal the next-token logits of an inference prefill of the same prefix with the compressed video in
 * place — for a prompt holding the video placeholder and for one that only marks the video with
 * <|vision_start|> (text_config.vision_start_token_id), as the needle and Vamba prompts do; and with a SigLIP tower.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { noGrad } from '../../src/autograd/index.js';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { defaultProcessor } from '../../src/models/qwen2vl/processor.js';
import { siglipPixels } from '../../src/models/siglip/preprocess.js';
import { parseTstarConfig } from '../../src/models/tstar/config.js';
import { Tstar } from '../../src/models/tstar/model.js';
import * as ops from '../../src/runtime/ops.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import { TstarTrainModel } from '../../src/train/tstar.js';
import { relErr } from '../helpers.js';
import { randomHost, storeOf, tinySiglip, tinyTstarJson } from '../models/tiny-tstar.js';

const be = cpuBackend();

async function rows(t: Tensor): Promise<Float32Array> {
  try {
    return Float32Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

describe('TSTAR training forward = the family’s inference', () => {
  const cases = [
    { text: 'qwen2' as const, marker: 'placeholder' as const },
    { text: 'qwen2' as const, marker: 'vision_start' as const },
    { text: 'nemotron_h' as const, marker: 'placeholder' as const },
    { text: 'nemotron_h' as const, marker: 'vision_start' as const },
    { text: 'qwen2' as const, marker: 'placeholder' as const, siglip: true },
  ];
  for (const { text, marker, siglip } of cases)
    it(`${text}${siglip ? ' with a SigLIP tower' : ''}, video at its ${marker}`, async () => {
      const json = tinyTstarJson(text);
      if (siglip) json.vision_config = tinySiglip('hf');
      (json.text_config as Record<string, unknown>).vision_start_token_id = 3;
      const config = parseTstarConfig(json);
      const host = randomHost(config, 5);
      const weights = new Map([...host].map(([n, h]) => [n, ops.tensor(be, h.values, h.shape)]));
      using train = TstarTrainModel.create(json, weights, 2);
      using infer = Tstar.fromParams(config, storeOf(host), be, 'f32');
      const pad = config.video_token_id;
      const size = 56 * 56 * 3;
      const frames = Uint8Array.from({ length: 4 * size }, (_, j) => (j * 29 + (j >> 7) * 13) % 256);
      const prompt = marker === 'placeholder' ? [1, 20, 21, pad, 30, 31] : [1, 20, 3, 4, 30, 31];
      const ex = { frames, count: 4, width: 56, height: 56, prompt, answer: [40, 41, 2], group: '' };
      const got = noGrad(() => {
        using fwd = train.forward();
        return fwd.logits(ex);
      });
      const vocab = config.vocab_size;
      assert.deepEqual(got.shape, [prompt.length + ex.answer.length - 1, vocab]);
      const all = await rows(got);

      // Inference: the frames through the tower (Qwen2-VL's processor, or SigLIP's square resize) and compressor.
      const v = config.vision;
      const list = Array.from({ length: 4 }, (_, t) => ({
        width: 56,
        height: 56,
        data: frames.subarray(t * size, (t + 1) * size),
      }));
      let video: Tensor;
      if (v.kind === 'siglip') {
        const s = v.config.image_size;
        using px = ops.tensor(be, siglipPixels(list, s), [4, 3, s, s]);
        using tokens = infer.encodeFrames(px);
        video = infer.compressGroups(tokens);
      } else {
        const b = defaultProcessor(v.config).processVideos([list]);
        using tokens = infer.encodeVision(b.pixelValues, b.grids[0]);
        video = infer.compress(tokens, b.grids[0]);
      }
      const n = video.shape[0];
      // Qwen2-VL: 2 groups of 4 merged tokens; SigLIP: 4 frames of 16 patches; k = 4.
      assert.equal(n, siglip ? 16 : 2);
      const ids = [...prompt, ...ex.answer.slice(0, -1)];
      const at = marker === 'placeholder' ? prompt.indexOf(pad) : prompt.indexOf(3) + 1;
      const rest = marker === 'placeholder' ? at + 1 : at;
      // Row j of the example predicts ids[j + 1]; from `at` on (at a placeholder: its own row, the video's last)
      // it has seen the video.
      for (let j = at; j < ids.length; j++) {
        const prefix = [...ids.slice(0, at), ...new Array<number>(n).fill(pad), ...ids.slice(rest, j + 1)];
        using session = infer.session(prefix.length);
        const want = await rows(session.prefill({ ids: prefix, video }));
        const e = relErr(all.subarray(j * vocab, (j + 1) * vocab), want);
        assert.ok(e < 1e-5, `row ${j}: relative error ${e}`);
      }
      video.dispose();
    });
});
