import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/runtime/dtype.js';

// Independent references: bit patterns from the IEEE definitions.
test('bf16 round-to-nearest-even and exact values', () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(-2), 0xc000);
  // 1 + 2^-8 lies exactly halfway between 1 and 1 + 2^-7: ties to even → 1.
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80);
  // 1 + 3·2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6: ties to even → 1+2^-6.
  assert.equal(bf16ToF32(f32ToBf16(1 + 3 * 2 ** -8)), 1 + 2 ** -6);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(Number.NaN))));
  for (let i = 0; i < 1000; i++) {
    const x = (Math.random() - 0.5) * 10 ** (Math.random() * 8 - 4);
    const y = bf16ToF32(f32ToBf16(x));
    assert.ok(Math.abs(y - x) <= Math.abs(x) * 2 ** -8, `${x} → ${y}`);
  }
});

test('f16 normal, subnormal, overflow', () => {
  assert.equal(f32ToF16(1), 0x3c00);
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(1e6), 0x7c00);
  assert.equal(f32ToF16(2 ** -24), 0x0001);
  assert.equal(f16ToF32(0x0001), 2 ** -24);
  assert.equal(f16ToF32(0xc000), -2);
  for (let i = 0; i < 1000; i++) {
    const x = (Math.random() - 0.5) * 100;
    const y = f16ToF32(f32ToF16(x));
    assert.ok(Math.abs(y - x) <= Math.max(Math.abs(x) * 2 ** -11, 2 ** -25), `${x} → ${y}`);
  }
});
