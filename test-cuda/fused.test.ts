// The binding of the fused kernels (attention, SSD, conv1d; written in native/cuda/{attention,ssd,conv1d}.cu).
// When a kernel is compiled in, one representative call must match the CPU; when it is not, the op must say so.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ops from '../src/runtime/ops.js';
import { assertParity, gpu, randomPair, TOL } from './helpers.js';

const built = (op: () => unknown): boolean => {
  try {
    op();
    return true;
  } catch (e) {
    assert.match((e as Error).message, /has no \w+ kernel .*npm run build:native/);
    return false;
  }
};

test('attention through the binding (GQA, causal with offset, returned weights)', async () => {
  const [gq, cq] = randomPair([2, 5, 4, 64], 'bf16');
  const [gk, ck] = randomPair([2, 13, 2, 64], 'bf16');
  const [gv, cv] = randomPair([2, 13, 2, 64], 'bf16');
  const opts = { causal: true, queryOffset: 8, returnWeights: true };
  if (!built(() => ops.attention(gq, gk, gv, opts))) return;
  const g = ops.attention(gq, gk, gv, opts);
  const c = ops.attention(cq, ck, cv, opts);
  await assertParity(g.out, c.out, TOL.bf16 * 2, 'attention out');
  await assertParity(g.weights!, c.weights!, 1e-3, 'attention weights');
});

test('conv1d and SSD scan/step through the binding', async () => {
  const [gx, cx] = randomPair([2, 37, 24], 'bf16');
  const [gw, cw] = randomPair([24, 4], 'bf16');
  const [gb, cb] = randomPair([24], 'bf16');
  if (built(() => ops.conv1dCausal(gx, gw, gb, { silu: true }))) {
    const g = ops.conv1dCausal(gx, gw, gb, { silu: true });
    const c = ops.conv1dCausal(cx, cw, cb, { silu: true });
    await assertParity(g.y, c.y, TOL.bf16 * 2, 'conv1d y');
    await assertParity(g.state, c.state, 0, 'conv1d state');
  }
  const [x, cX] = randomPair([1, 37, 4, 16], 'bf16');
  const [dt, cdt] = randomPair([1, 37, 4], 'f32', 0.01, 0.3);
  const [A, cA] = randomPair([4], 'f32', -2, -0.2);
  const [B, cB] = randomPair([1, 37, 2, 8], 'bf16');
  const [C, cC] = randomPair([1, 37, 2, 8], 'bf16');
  const [D, cD] = randomPair([4], 'f32');
  if (!built(() => ops.ssdScan({ x, dt, A, B, C, D }, 16))) return;
  const g = ops.ssdScan({ x, dt, A, B, C, D }, 16);
  const c = ops.ssdScan({ x: cX, dt: cdt, A: cA, B: cB, C: cC, D: cD }, 16);
  // y keeps the bf16 rounding of its operands (the decayed C·Bᵀ scores, the start states), as mamba_ssm's
  // kernels do, so outputs that cancel terms of the data's size carry ~2⁻⁹ of that size.
  await assertParity(g.y, c.y, TOL.bf16 * 3, 'ssd y', 0.1);
  // The state is f32 from bf16 inputs: the chunk-state product splits its f32 operand (no bf16 rounding).
  await assertParity(g.state, c.state, 1e-3, 'ssd state', 5e-2);
  assert.equal(gpu.name, 'cuda');
});
