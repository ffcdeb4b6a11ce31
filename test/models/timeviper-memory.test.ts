/**
 * TimeViper's question prefill (models/timeviper/size.ts `prefillBytes`, the CLI's fit check) against what the
 * CPU backend allocates: the tiny TransV fixture (residual stream in f32, a uniform stage at block 2 and an
 * attention-guided one at block 6) prefilled over 16 and 256 frames' tokens, with and without its drop
 * stages; the estimate covers the measured peak and is not over 3× it. (The encode's plan is checked in
 * test/serve/encode-plan.test.ts.)
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { TimeViperModel } from '../../src/models/timeviper/model.js';
import { timeViperMemory } from '../../src/models/timeviper/size.js';
import * as ops from '../../src/runtime/ops.js';

const be = cpuBackend();
const DIR = join(import.meta.dirname, '..', 'fixtures', 'timeviper', 'transv');

describe('TimeViper prefill memory', () => {
  it('the estimate covers the CPU backend’s peak (≤ 3×), with and without the drop stages', async () => {
    using model = await TimeViperModel.load(DIR, be, 'f32');
    const c = model.config;
    assert.ok(c.stages.length === 2 && c.llm.residual_in_fp32);
    const [before, after, answer] = [10, 10, 4];
    for (const frames of [16, 256])
      for (const drops of [false, true]) {
        const n = frames * c.tokensPerFrame * c.llm.hidden_size;
        using visual = ops.tensor(
          be,
          Float32Array.from({ length: n }, (_, i) => Math.sin(i)),
          [frames, c.tokensPerFrame, c.llm.hidden_size],
        );
        const ids = [
          ...Array.from({ length: before }, (_, i) => 5 + i),
          ...new Array<number>(frames).fill(c.imageTokenId),
          ...Array.from({ length: after }, (_, i) => 20 + i),
        ];
        const held = be.memory().current;
        be.resetPeak();
        {
          using session = model.session(before + after + frames * c.tokensPerFrame + answer, drops);
          using _logits = await session.prefill({ ids, visual });
        }
        const peak = be.memory().peak - held;
        assert.equal(be.memory().current, held, 'the prefill let go of everything');
        const m = timeViperMemory(c, {
          frames,
          textTokens: before + after,
          newTokens: answer,
          dtype: 'f32',
          drops,
        });
        const what = `${frames} frames, drops ${drops}: estimated ${m.prefillBytes} B, measured ${peak} B`;
        assert.ok(m.prefillBytes >= peak, `${what}: the estimate is below the peak`);
        assert.ok(m.prefillBytes <= 3 * peak, `${what}: the estimate is over 3× the peak`);
      }
  });
});
