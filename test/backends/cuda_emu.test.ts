// native/cuda/grad.cu's launch functions (backward kernels, losses, the multi-tensor AdamW and sum of squares) run
// under the CPU emulation of native/cuda/test/emu against the CPU backend: indexing, barriers, warp collectives
// and split reductions checked without a GPU. Needs g++ and the CUDA headers (present where the addon builds:
// CI has nvcc); the GPU itself runs test-cuda/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../native/cuda/test/emu/grad.sh', import.meta.url));
const headers = join(process.env.CUDA_HOME ?? '/usr/local/cuda', 'include', 'cuda_runtime.h');
let gxx = true;
try {
  execFileSync('sh', ['-c', 'command -v g++'], { stdio: 'ignore' });
} catch {
  gxx = false;
}

if (gxx && existsSync(headers))
  test('grad.cu kernels under the CPU emulation match the CPU backend', () => {
    const out = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.doesNotMatch(out, /^FAIL/m, out);
    assert.match(out, /all grad\.cu kernels match the CPU backend under the emulation/, out);
    assert.match(out, /^ok {3}sumSquares sum/m, out);
  });
