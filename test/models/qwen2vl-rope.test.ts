// get_rope_index on mixed text/image/video prompts against positions worked out by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../../src/errors.js';
import { getRopeIndex } from '../../src/models/qwen2vl/rope-index.js';

const tokens = { image_token_id: 7, video_token_id: 8 };
const [T, I, V, S, E] = [1, 7, 8, 5, 6]; // text, image pad, video pad, vision start, vision end

test('M-RoPE positions: text, an image (1×4×6 patches) and a video (2×2×4), with rope delta', () => {
  // text×2, <vs>, image 1·2·3 = 6 pads, <ve>, text, <vs>, video 2·1·2 = 4 pads, <ve>, text
  const ids = [T, T, S, I, I, I, I, I, I, E, T, S, V, V, V, V, E, T];
  const { positions, ropeDelta } = getRopeIndex(ids, tokens, [[1, 4, 6]], [[2, 2, 4]], 2);
  // Image starts at 3: t = 3; h = 3 + row (2 rows); w = 3 + col (3 cols). Next text at 3 + max(1, 2, 3) = 6.
  // <ve> 6, text 7, <vs> 8. Video starts at 9: t = 9 + group (2), h = 9 (1 row), w = 9 + col (2).
  // Next at 9 + max(2, 1, 2) = 11.
  const t = [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7, 8, 9, 9, 10, 10, 11, 12];
  const h = [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7, 8, 9, 9, 9, 9, 11, 12];
  const w = [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8, 9, 10, 9, 10, 11, 12];
  assert.deepEqual([...positions[0]], t);
  assert.deepEqual([...positions[1]], h);
  assert.deepEqual([...positions[2]], w);
  assert.equal(ropeDelta, 13 - ids.length); // next position 13, 18 tokens
});

test('M-RoPE positions: text only is 0..n−1 on every row with delta 0; two adjacent images', () => {
  const { positions, ropeDelta } = getRopeIndex([T, T, T], tokens, [], [], 2);
  for (const row of positions) assert.deepEqual([...row], [0, 1, 2]);
  assert.equal(ropeDelta, 0);
  // Two 1×2×2 images back to back (one merged token each): positions 1 and 2.
  const two = getRopeIndex(
    [T, I, I, T],
    tokens,
    [
      [1, 2, 2],
      [1, 2, 2],
    ],
    [],
    2,
  );
  assert.deepEqual([...two.positions[0]], [0, 1, 2, 3]);
});

test('M-RoPE positions: pad counts must match the grids', () => {
  assert.throws(() => getRopeIndex([T, I, I, T], tokens, [[1, 4, 4]], [], 2), InputError);
  assert.throws(() => getRopeIndex([T, V, T], tokens, [], [], 2), InputError);
  assert.throws(() => getRopeIndex([T, T], tokens, [[1, 2, 2]], [], 2), InputError);
});

test('M-RoPE positions: text after a long video resumes past its temporal extent (t > h, w)', () => {
  // Qwen2-VL as released (transformers 4.45–4.57, vLLM, Qwen's finetune code): text resumes at the video's
  // largest position + 1, i.e. start + max(t, h, w). transformers 5.3+ resumes at start + max(h, w), which
  // overlaps the video's temporal positions; a long video (t ≫ h, w) is where the two differ.
  const video = Array<number>(32).fill(V); // grid 8×4×4, merge 2: 8·2·2 = 32 pads
  const ids = [T, T, S, ...video, E, T, T];
  const { positions, ropeDelta } = getRopeIndex(ids, tokens, [], [[8, 4, 4]], 2);
  const at = (row: number, i: number) => positions[row]![i];
  assert.equal(at(0, 3), 3); // first video token: t = h = w = 3
  assert.equal(at(0, 3 + 31), 10); // last group: t = 3 + 7
  assert.equal(at(1, 3 + 31), 4);
  assert.equal(at(2, 3 + 31), 4);
  for (const row of [0, 1, 2]) assert.deepEqual([at(row, 35), at(row, 36), at(row, 37)], [11, 12, 13]);
  // Decoding continues right after the prompt: the next position is n + ropeDelta = 14.
  assert.equal(ids.length + ropeDelta, 14);
});
