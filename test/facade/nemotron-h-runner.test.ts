import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UsageError } from '../../src/errors.js';
import type { ChatTurn } from '../../src/facade/types.js';
import { VideoLM } from '../../src/facade/video-lm.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { NemotronHForCausalLM } from '../../src/models/nemotron_h/index.js';
import { NEMOTRON_SPECIALS, WORDS, writeTinyNemotronH } from '../models/tiny-nemotron-h.js';

const NEW = 8;

describe('VideoLM over a tiny Nemotron-H (a text model)', () => {
  let dir: string;
  let model: VideoLM;
  let lm: NemotronHForCausalLM;
  let tok: Tokenizer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'longshot-nemotron-'));
    writeTinyNemotronH(dir);
    model = await VideoLM.load(dir, { device: 'cpu' });
    lm = await NemotronHForCausalLM.load(dir);
    tok = await Tokenizer.fromDir(dir);
  });
  after(() => {
    model?.dispose();
    lm?.[Symbol.dispose]();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The prompt ids as the checkpoint's template renders them, and the model's own greedy continuation. */
  async function reference(turns: ChatTurn[]) {
    const ids = tok.encode(tok.applyChatTemplate(turns, { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    });
    const tokens: number[] = [];
    for await (const t of lm.generate(ids, { maxNewTokens: NEW })) tokens.push(t.token);
    return { ids, tokens, text: tok.decode(tokens, { skipSpecialTokens: true }) };
  }

  it('is recognised as nemotron_h, a text model of the fixture’s shape', () => {
    assert.equal(model.info.architecture, 'nemotron_h');
    assert.equal(model.info.textOnly, true);
    assert.equal(model.info.layers, 10);
    assert.equal(model.info.hiddenSize, 32);
  });

  it('answers a chat greedily with the tokens the model’s own generate gives on the template’s prompt', async () => {
    const turns: ChatTurn[] = [{ role: 'user', content: 'what is the colour of the sky ?' }];
    const want = await reference(turns);
    // Reasoning is on by default: the prompt ends with the assistant header and `<think>\n`.
    assert.equal(want.ids.at(-1), NEMOTRON_SPECIALS['<think>']);
    assert.equal(want.ids[0], NEMOTRON_SPECIALS['<SPECIAL_10>']);
    const got = await model.chat(turns, { maxNewTokens: NEW }).result();
    assert.equal(got.text, want.text);
    assert.deepEqual(got.usage, {
      promptTokens: want.ids.length,
      videoTokens: 0,
      completionTokens: want.tokens.length,
      totalTokens: want.ids.length + want.tokens.length,
    });
  });

  it('/no_think in the system prompt closes the thinking; a kept system prefix gives the same answers', async () => {
    const system: ChatTurn = { role: 'system', content: 'You are a helpful assistant . be brief /no_think' };
    for (const q of ['what is the colour of the sea ?', 'what is the colour of grass ?', 'is it red ?']) {
      const turns: ChatTurn[] = [system, { role: 'user', content: q }];
      const want = await reference(turns);
      assert.deepEqual(want.ids.slice(-2), [NEMOTRON_SPECIALS['<think>'], NEMOTRON_SPECIALS['</think>']]);
      // The second and third questions continue from the system prompt's cache snapshot.
      const got = await model.chat(turns, { maxNewTokens: NEW }).result();
      assert.equal(got.text, want.text, q);
      assert.equal(got.usage.completionTokens, want.tokens.length, q);
    }
  });

  it('a reasoning budget cuts the thinking, closes it with ".\\n</think>\\n\\n" and continues the answer', async () => {
    const turns: ChatTurn[] = [{ role: 'user', content: 'what is the colour of the sky ?' }];
    const { ids } = await reference(turns);
    const budget = 3;
    const thinking: number[] = [];
    for await (const t of lm.generate(ids, { maxNewTokens: budget })) thinking.push(t.token);
    assert.ok(!thinking.includes(NEMOTRON_SPECIALS['</think>']), 'the fixture closes its thinking early');
    // '.' then '</think>' (the newlines are whitespace to this tokenizer).
    const close = [WORDS.indexOf('.'), NEMOTRON_SPECIALS['</think>']];
    assert.deepEqual(tok.encode('.\n</think>\n\n', { addSpecialTokens: false }), close);
    const rest: number[] = [];
    const continued = [...ids, ...thinking, ...close];
    for await (const t of lm.generate(continued, { maxNewTokens: NEW - budget - close.length }))
      rest.push(t.token);
    const got = await model.chat(turns, { maxNewTokens: NEW, reasoningBudget: budget }).result();
    assert.equal(got.usage.completionTokens, budget + close.length + rest.length);
    assert.ok(got.text.startsWith(tok.decode(thinking, { skipSpecialTokens: true })), got.text);
    assert.ok(got.text.endsWith(tok.decode(rest, { skipSpecialTokens: true })), got.text);
    // A budget that leaves nothing for the answer is the caller's mistake.
    await assert.rejects(
      model.chat(turns, { maxNewTokens: 4, reasoningBudget: 4 }).result(),
      (e: Error) =>
        e instanceof UsageError &&
        /reasoning budget must be an integer from 1 to max tokens − 1 \(3\), got 4/.test(e.message),
    );
  });

  it('stops at a stop token of generation_config.json', async () => {
    const turns: ChatTurn[] = [{ role: 'user', content: 'what is the colour of the sky ?' }];
    const { tokens } = await reference(turns);
    // The same checkpoint whose generation_config.json names the third greedy token (not an earlier one) as eos.
    const stop = tokens.find((t, i) => i >= 2 && !tokens.slice(0, i).includes(t));
    assert.ok(stop !== undefined);
    const other = mkdtempSync(join(tmpdir(), 'longshot-nemotron-stop-'));
    try {
      writeTinyNemotronH(other);
      writeFileSync(join(other, 'generation_config.json'), JSON.stringify({ eos_token_id: [stop] }));
      using stopping = await VideoLM.load(other, { device: 'cpu' });
      const got = await stopping.chat(turns, { maxNewTokens: NEW }).result();
      assert.equal(got.finishReason, 'stop');
      assert.equal(got.usage.completionTokens, tokens.indexOf(stop) + 1);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('streams the same text it returns', async () => {
    const answer = model.chat([{ role: 'user', content: 'what is the colour of the sky ?' }], {
      maxNewTokens: NEW,
    });
    let streamed = '';
    for await (const piece of answer) streamed += piece;
    assert.equal(streamed, (await answer.result()).text);
  });

  it('refuses a video with a usage error that says it is a text model', async () => {
    await assert.rejects(
      model.encodeVideo(join(dir, 'clip.mp4')),
      (e: Error) =>
        e instanceof UsageError && /nemotron_h is a text model: ask without a video/.test(e.message),
    );
  });
});
