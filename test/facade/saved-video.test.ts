/**
 * VideoLM.saveVideo / loadVideo on the embedded tiny Vamba: a saved encoding answers in a new process (here a
 * new VideoLM) exactly as the original did, and a file from another model or other sampling is refused.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InputError, ModelError, UsageError } from '../../src/errors.js';
import type { VideoHandle } from '../../src/facade/engine.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { TEST_POLICY, TestRunner } from './test-runner.js';
import { writeTinyVamba } from './tiny-models.js';

const EXAMPLES = join(import.meta.dirname, '../../examples/needle');
const [sample] = readFileSync(join(EXAMPLES, 'questions.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as { video: string; question: string });
const video = join(EXAMPLES, sample.video);

describe('saved videos', () => {
  let dir: string;
  let model: VideoLM;
  let handle: VideoHandle;
  let file: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'longshot-saved-video-'));
    file = join(dir, 'needle.safetensors');
    model = await VideoLM.load();
    handle = await model.encodeVideo(video);
    await model.saveVideo(handle, file);
  });
  after(() => {
    handle?.dispose();
    model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads in another VideoLM and answers as the original encoding did', async () => {
    // Only the finished file is left: the temporary one it was written to was renamed into place.
    assert.deepEqual(readdirSync(dir), ['needle.safetensors']);
    using other = await VideoLM.load();
    using loaded = await other.loadVideo(file);
    assert.equal(loaded.label, video);
    assert.deepEqual(loaded.timestampsSec, handle.timestampsSec);
    assert.deepEqual(loaded.decode, handle.decode);
    assert.equal(loaded.decode.decoded, 32); // every frame of the 32-frame clip
    assert.equal(loaded.tokens, handle.tokens);
    assert.equal(loaded.bytes, handle.bytes);
    const opts = { maxNewTokens: 6 };
    const want = await model.ask(handle, sample.question, opts).result();
    const got = await other.ask(loaded, sample.question, opts).result();
    assert.ok(want.text.length > 0);
    assert.equal(got.text, want.text);
    assert.deepEqual(got.usage, want.usage);
    assert.deepEqual(got.video, want.video);
  });

  it('two saves racing to one path leave one whole file', async (t) => {
    const path = join(dir, 'raced.safetensors');
    t.after(() => rmSync(path, { force: true }));
    await Promise.all([model.saveVideo(handle, path), model.saveVideo(handle, path)]);
    assert.deepEqual(readdirSync(dir).sort(), ['needle.safetensors', 'raced.safetensors']);
    using loaded = await model.loadVideo(path);
    assert.equal(loaded.tokens, handle.tokens);
  });

  it('refuses a file made with other sampling, naming the setting', async () => {
    await assert.rejects(
      model.loadVideo(file, { frames: 8 }),
      (e: Error) => e instanceof InputError && /other sampling: frames 1024 \(wanted 8\)/.test(e.message),
    );
  });

  it('refuses a file made by another model', async () => {
    const other = join(dir, 'other-model');
    mkdirSync(other);
    await writeTinyVamba(other);
    using tiny = await VideoLM.load(other);
    await assert.rejects(
      tiny.loadVideo(file),
      (e: Error) => e instanceof InputError && /encoded with other settings.*model: /.test(e.message),
    );
  });

  it('refuses what it cannot do: no hooks, another model’s handle, no file', async () => {
    const bare = VideoLM.fromRunner(new TestRunner({ width: 8, height: 8 }), TEST_POLICY);
    await assert.rejects(
      bare.saveVideo(handle, join(dir, 'x')),
      /test: this model cannot save encoded videos/,
    );
    await assert.rejects(bare.loadVideo(file), ModelError);
    using other = await VideoLM.load();
    await assert.rejects(other.saveVideo(handle, join(dir, 'x')), UsageError);
    await assert.rejects(model.loadVideo(join(dir, 'missing.safetensors')), InputError);
    assert.deepEqual(readdirSync(dir).sort(), ['needle.safetensors', 'other-model']);
  });

  it('Qwen2-VL: saves its vision tokens, prefills again on loading, answers the same; files do not cross families', async (t) => {
    const qwenDir = join(import.meta.dirname, '../../models/needle-qwen2vl-tiny');
    using qwen = await VideoLM.load(qwenDir);
    using encoded = await qwen.encodeVideo(video);
    const path = join(dir, 'qwen.safetensors');
    t.after(() => rmSync(path, { force: true }));
    await qwen.saveVideo(encoded, path);
    using other = await VideoLM.load(qwenDir);
    using loaded = await other.loadVideo(path);
    assert.deepEqual(loaded.timestampsSec, encoded.timestampsSec);
    assert.equal(loaded.tokens, encoded.tokens);
    assert.equal(loaded.bytes, encoded.bytes); // the prefix was prefilled again
    const opts = { maxNewTokens: 6 };
    const want = await qwen.ask(encoded, sample.question, opts).result();
    const got = await other.ask(loaded, sample.question, opts).result();
    assert.equal(got.text, want.text);
    assert.deepEqual(got.usage, want.usage);
    await assert.rejects(other.loadVideo(file), /is not a saved Qwen2-VL video/);
    await assert.rejects(model.loadVideo(path), /is not a saved Vamba video/);
  });
});
