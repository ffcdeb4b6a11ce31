// native/cuda/grad.cu's launch functions (backward kernels, losses, the multi-tensor AdamW and sum of squares),
// layout.cu's reduction and decode.cu's batched attention (with attention.cu's tensor-core tiles for keys that
// several rows read) run under the CPU emulation of native/cuda/test/emu against the CPU backend and float64
// loops: indexing, barriers, warp collectives, MMA fragments and split reductions checked without a GPU. Needs g++ and the CUDA headers (present where the addon builds:
// CI has nvcc); the GPU itself runs test-cuda/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../native/cuda/test/emu/check.sh', import.meta.url));
const headers = join(process.env.CUDA_HOME ?? '/usr/local/cuda', 'include', 'cuda_runtime.h');
let gxx = true;
try {
  execFileSync('sh', ['-c', 'command -v g++'], { stdio: 'ignore' });
} catch {
  gxx = false;
}

const kernelsTest = fileURLToPath(new URL('../../native/cuda/test/emu/run.sh', import.meta.url));
const run = (unit: 'grad' | 'layout') =>
  execFileSync('bash', [script, unit], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

if (gxx && existsSync(headers)) {
  test('grad.cu kernels under the CPU emulation match the CPU backend', () => {
    const out = run('grad');
    assert.doesNotMatch(out, /^FAIL/m, out);
    assert.match(out, /all grad\.cu kernels match the CPU backend under the emulation/, out);
    assert.match(out, /^ok {3}sumSquares sum/m, out);
  });

  test('layout.cu reductions (rows, per output, split over a long axis) match float64 under the emulation', () => {
    const out = run('layout');
    assert.doesNotMatch(out, /^FAIL/m, out);
    assert.match(out, /launch_reduce matches float64 under the emulation/, out);
    assert.match(out, /^ok {3}reduce sum \[1, 4001, 48\].*workspace [1-9]/m, out);
  });

  test('decode.cu batched attention (shared keys on tensor-core tiles) matches float64 under the emulation', () => {
    const out = execFileSync('bash', [kernelsTest, 'decode'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.doesNotMatch(out, /^FAIL/m, out);
    assert.match(
      out,
      /^ok {3}bf16 {3}attention_rows GQA7 d128, all rows on one prefix \(tensor cores, splits\)/m,
      out,
    );
    assert.match(
      out,
      /^ok {3}bf16 {3}attention_rows GQA7 d128, own keys shared \(Vamba's cross-attention\)/m,
      out,
    );
    assert.match(out, /PASSED: 0 failure\(s\)/, out);
  });
}
