/**
 * Qwen2-VL prefix reuse on the tiny checkpoints (CPU, f32): the prompt up to the end of the video is prefilled
 * (and any image before it) once into a cache snapshot; questions continued from it give the logits of a full prefill of the whole
 * prompt (≤ 1e-5 relative), and the same greedy tokens, one after another or side by side.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { generate } from '../../src/generate/generate.js';
import { Qwen2VL, type Qwen2VLInputs, type Qwen2VLSession } from '../../src/models/qwen2vl/model.js';
import * as ops from '../../src/runtime/ops.js';
import { FIXTURES, fixtureInputs, readArrays, readJson, relErr } from './qwen2vl-fixtures.js';

const cpu = cpuBackend();

async function greedy(session: Qwen2VLSession, inputs: Qwen2VLInputs) {
  const tokens: number[] = [];
  for await (const t of generate(session, inputs, { maxNewTokens: 6, stopTokens: [] })) tokens.push(t.token);
  return tokens;
}

for (const name of ['tiny-a', 'tiny-b'])
  test(`Qwen2-VL ${name}: questions from a prefilled video prefix equal full prefills`, async () => {
    using model = await Qwen2VL.load(join(FIXTURES, name), { backend: cpu });
    const meta = await readJson(join(FIXTURES, name, 'reference.json'));
    const proc = await readArrays(join(FIXTURES, 'processor', 'outputs.safetensors'));
    const prompt = meta.prompts.video ? 'video' : 'mixed'; // tiny-b: an image, then the video
    const ids: number[] = meta.prompts[prompt].input_ids;
    const video = fixtureInputs(prompt, ids, proc);
    const { video_token_id: pad, vision_end_token_id: end } = model.config;
    const cut = ids.lastIndexOf(pad) + 1 + (ids[ids.lastIndexOf(pad) + 1] === end ? 1 : 0);
    // The video's M-RoPE positions end below the token count, so a question's positions must be shifted.
    assert.notEqual(model.ropeIndex(video).ropeDelta, 0);
    const embeds = model.encodeVision(video.pixelValuesVideos!, video.videoGridThw!);
    const withVideo = (inputIds: number[]): Qwen2VLInputs => ({
      ...video,
      inputIds,
      pixelValuesVideos: null,
      videoEmbeds: embeds,
    });
    using prefix = model.prefillPrefix(withVideo(ids.slice(0, cut)), { room: 16 });
    const questions = [ids.slice(cut), [95, 7, 300, 41, 286], [12]].map((q) => [...ids.slice(0, cut), ...q]);

    for (const q of questions) {
      const full = model.forward(withVideo(q));
      const want = await ops.slice(full, 0, q.length - 1, q.length).data();
      using s = model.session({ capacity: q.length + 8, prefix });
      const got = await s.prefill(withVideo(q)).data();
      const err = relErr(got, want);
      assert.ok(
        err <= 1e-5,
        `${name}, question of ${q.length - cut}: relative error ${err.toExponential(2)}`,
      );
      using plain = model.session({ capacity: q.length + 8 });
      using again = model.session({ capacity: q.length + 8, prefix });
      assert.deepEqual(await greedy(again, withVideo(q)), await greedy(plain, withVideo(q)));
    }

    // Two questions alive at once (the second copies the prefix rows): each still equals its full prefill.
    using a = model.session({ capacity: questions[0].length + 8, prefix });
    using b = model.session({ capacity: questions[1].length + 8, prefix });
    const ga = await a.prefill(withVideo(questions[0])).data();
    const gb = await b.prefill(withVideo(questions[1])).data();
    for (const [got, q] of [
      [ga, questions[0]],
      [gb, questions[1]],
    ] as const) {
      const full = model.forward(withVideo(q));
      assert.ok(relErr(got, await ops.slice(full, 0, q.length - 1, q.length).data()) <= 1e-5);
    }

    // A prefix, a question and a step from it leave nothing allocated once disposed.
    const before = cpu.memory().current;
    {
      using p = model.prefillPrefix(withVideo(ids.slice(0, cut)));
      using s = model.session({ capacity: questions[1].length + 2, prefix: p });
      s.prefill(withVideo(questions[1])).dispose();
      s.step(7).dispose();
    }
    assert.equal(cpu.memory().current, before);

    using other = model.session({ capacity: 64, prefix });
    assert.throws(() => other.prefill(withVideo([...ids.slice(0, cut - 1), 7, 8])), /does not continue/);
    embeds.dispose();
  });
