/**
 * Whole-model gradients of TSTAR-MambaMia against PyTorch: the tiny model of test/fixtures/grads/mambamia.safetensors
 * (tools/reference/grad_fixtures_mambamia.py: needle_mambamia.py's PyTorch TSTAR — Qwen2-VL's vision tower, the
 * bidirectional gated MambaMia compressor, a Qwen2 decoder —, torch 1.13, CPU, f32), loaded into the trainer's
 * TSTAR; valueAndGrad of the answer-token cross-entropy gives PyTorch's loss and the gradient of every parameter
 * (tower, compressor and LLM) within 1e-4 of its largest element (f32; the worst is ~1e-5).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/backends/cpu/index.js';
import { getBackend } from '../../src/runtime/device.js';
import { compareMambaMiaGrads } from './mambamia-fixture.js';

test('tiny TSTAR-MambaMia: loss and the gradient of every parameter match PyTorch (f32)', async () => {
  const r = await compareMambaMiaGrads(await getBackend('cpu'));
  assert.ok(Math.abs(r.loss - r.refLoss) < 1e-5 * r.refLoss, `loss ${r.loss} vs PyTorch ${r.refLoss}`);
  assert.deepEqual(r.unreached, [], 'the fixture reaches every parameter');
  // The whole model: tower, compressor (both scan directions, the pooling heads, the query) and LLM.
  const names = r.errors.map(([n]) => n);
  assert.equal(names.length, 90);
  for (const part of [
    'visual.',
    'mm_projector.model.layers.1.mixer.A_b_log',
    'mm_projector.model.layers.0.gate_fc.',
    'mm_projector.query_token',
    'model.layers.1.',
    'lm_head.',
  ])
    assert.ok(
      names.some((n) => n.startsWith(part)),
      part,
    );
  const bad = r.errors.filter(([, e]) => !(e <= 1e-4));
  assert.deepEqual(
    bad,
    [],
    `gradients off by more than 1e-4 of their largest element: ${JSON.stringify(bad)}`,
  );
});
