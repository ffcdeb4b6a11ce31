import '../../src/backends/cpu/index.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Qwen2VL } from '../../src/models/qwen2vl/model.js';
import { Qwen2VLProcessor } from '../../src/models/qwen2vl/processor.js';
import { Vamba } from '../../src/models/vamba/index.js';
import { renderFrame } from '../../src/needle/render.js';
import { makeSample, type Task } from '../../src/needle/tasks.js';

/**
 * The shipped models against the PyTorch code that trained them (tools/reference/needle_fixtures.py): the same
 * sample rendered again here, our processor, our models. Agreement pins the training-time preprocessing
 * (torch patchify) and model code to the inference-time ones.
 */
interface FixtureSample {
  seed: number;
  id: string;
  task: Task;
  frames: number;
  /** Each model's prompt in its own tokenizer (the shipped Vamba: tokenizer v2; Qwen2-VL: v1). */
  vamba_input_ids: number[];
  qwen2vl_input_ids: number[];
  vamba_logits: number[];
  qwen2vl_logits: number[];
}
const fixture = JSON.parse(readFileSync('test/fixtures/needle/parity.json', 'utf8')) as {
  side: number;
  fps: number;
  needle_frames: number;
  samples: FixtureSample[];
};

function frames(s: FixtureSample) {
  const sample = makeSample(s.seed, s.id, {
    frames: s.frames,
    fps: fixture.fps,
    width: fixture.side,
    height: fixture.side,
    needleFrames: fixture.needle_frames,
    task: s.task,
  });
  return Array.from({ length: s.frames }, (_, t) => renderFrame(sample, t));
}

function assertClose(got: ArrayLike<number>, want: number[], what: string) {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  assert.equal(got.length, want.length, `${what}: vocabulary size`);
  assert.ok(diff / scale < 1e-4, `${what}: relative difference ${diff / scale}`);
  const argmax = (a: ArrayLike<number>) => Array.prototype.indexOf.call(a, Math.max(...Array.from(a)));
  assert.equal(argmax(got), argmax(want), `${what}: greedy token`);
}

test('the shipped tiny Vamba reproduces its PyTorch logits on rendered needle videos', async () => {
  using m = await Vamba.load('models/needle-vamba-tiny');
  for (const s of fixture.samples) {
    const { pixelValues, grid } = m.processor.preprocess(frames(s), m.processor.video);
    using video = m.encodeVideo(pixelValues, grid);
    using session = m.session(video, { capacity: s.vamba_input_ids.length });
    using logits = session.prefill(s.vamba_input_ids);
    assertClose(await logits.toArray(), s.vamba_logits, `vamba ${s.id}`);
  }
});

test('the shipped tiny Qwen2-VL reproduces its PyTorch logits with the video pads expanded', async () => {
  using m = await Qwen2VL.load('models/needle-qwen2vl-tiny');
  const processor = await Qwen2VLProcessor.load('models/needle-qwen2vl-tiny');
  for (const s of fixture.samples) {
    const { pixelValues, grid } = processor.preprocess(frames(s), processor.video);
    const ids = s.qwen2vl_input_ids;
    const at = ids.indexOf(m.config.vision_start_token_id) + 1;
    const pads = (grid[0] * grid[1] * grid[2]) / 4;
    const inputIds = [...ids.slice(0, at), ...Array(pads).fill(m.config.video_token_id), ...ids.slice(at)];
    using session = m.session({ capacity: inputIds.length });
    using logits = session.prefill({ inputIds, pixelValuesVideos: pixelValues, videoGridThw: [grid] });
    assertClose(await logits.toArray(), s.qwen2vl_logits, `qwen2vl ${s.id}`);
  }
});
