import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import { VideoLM } from '../../src/facade/video-lm.js';
import { encodePng } from '../../src/media/png.js';
import { vambaPrompt } from '../../src/models/vamba/prompt.js';
import { needleTokenizerConfig, needleTokenizerJson } from '../../src/needle/tokenizer.js';
import { H264, makeVideo, scratch } from '../media/fixtures.js';
import { writeTinyVamba } from './tiny-models.js';

describe('VideoLM over a tiny random Vamba', () => {
  let model: VideoLM;
  let video: string;
  before(async () => {
    const dir = scratch();
    await writeTinyVamba(dir);
    video = await makeVideo(join(dir, 'clip.mp4'), {
      width: 96,
      height: 64,
      frames: 20,
      fps: 10,
      encode: H264,
    });
    model = await VideoLM.load(dir);
  });
  after(() => model.dispose());

  it('encodes once and answers several questions from the cached cross-attention K/V', async () => {
    assert.equal(model.info.architecture, 'vamba');
    const events: string[] = [];
    const handle = await model.encodeVideo(video, {
      frames: 4,
      sampling: 'uniform',
      progress: {
        start: (n) => events.push(`start ${n}`),
        frames: (n) => events.push(`frames ${n}`),
        finish: () => events.push('finish'),
      },
    });
    // The progress bar learns the frame count first, then frames as batches are encoded, then the end.
    assert.equal(events[0], 'start 4');
    assert.equal(events.at(-2), 'frames 4');
    assert.equal(events.at(-1), 'finish');
    // 96×64 is raised to 256×256 (Vamba's shortest edge), then smart_resize within max_pixels 16·28²
    // gives 112×112: 4×4 merged tokens for each of the 2 frame pairs.
    assert.equal(handle.tokens, 2 * 4 * 4);
    const question = 'Which word appeared?';
    const first = await model.ask(handle, question, { maxNewTokens: 4 }).result();
    const again = await model.ask(handle, question, { maxNewTokens: 4 }).result();
    assert.equal(again.text, first.text, 'greedy answers from the same handle differ');
    const tok = new Tokenizer(needleTokenizerJson() as never, needleTokenizerConfig() as never);
    const promptTokens = tok.encode(vambaPrompt([{ role: 'user', content: question }]), {
      add_special_tokens: false,
    }).ids.length;
    assert.deepEqual(first.usage, {
      promptTokens,
      videoTokens: handle.tokens,
      completionTokens: first.usage.completionTokens,
      totalTokens: promptTokens + handle.tokens + first.usage.completionTokens,
    });
    assert.ok(first.usage.completionTokens >= 1 && first.usage.completionTokens <= 4);
    handle.dispose();
  });

  it('an image is one frame that Vamba pairs with itself', async () => {
    const still = join(scratch(), 'still.png');
    writeFileSync(still, encodePng(96, 64, new Uint8Array(96 * 64 * 3).fill(200)));
    const handle = await model.encodeVideo(still);
    assert.deepEqual(handle.timestampsSec, [0]);
    // One frame pair at 112×112 (as the video's pairs above): 4×4 merged tokens.
    assert.equal(handle.tokens, 4 * 4);
    const answer = await model.ask(handle, 'What is shown?', { maxNewTokens: 2 }).result();
    assert.equal(answer.usage.videoTokens, 16);
    handle.dispose();
  });

  it('builds the official prompt for one question, and refuses fps sampling', async () => {
    assert.equal(
      vambaPrompt([{ role: 'user', content: 'What happens?' }]),
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|vision_end|>What happens?<|im_end|>\n<|im_start|>assistant\n',
    );
    assert.equal(
      vambaPrompt([
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Why?' },
      ]),
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|vision_start|><|vision_end|>Why?<|im_end|>\n<|im_start|>assistant\n',
    );
    await assert.rejects(
      model.encodeVideo(video, { sampling: 'fps' }),
      /samples with uniform or middle, not 'fps'/,
    );
  });
});
