// native/cpu/check.c: every C kernel against plain scalar references (f64, libm) on odd sizes, built for this
// machine, and for arm64 (base and NEON kernels, run under qemu) where Debian's cross tools are installed
// (.ci/run installs them: apt-get install gcc-aarch64-linux-gnu qemu-user).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../scripts/check-arm64.sh', import.meta.url));
const onPath = (tool: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

test('cpu kernels in C equal the scalar references on this machine', () => {
  const out = execFileSync(script, ['--host'], { encoding: 'utf8' });
  assert.match(out, /^ok base$/m, out);
  assert.doesNotMatch(out, /FAIL/, out);
});

if (onPath('aarch64-linux-gnu-gcc') && onPath('qemu-aarch64'))
  test('cpu kernels in C equal the scalar references on arm64 (base and NEON, under qemu)', () => {
    const out = execFileSync(script, [], { encoding: 'utf8' });
    assert.match(out, /ARM aarch64|built/, out);
    assert.match(out, /^ok base$/m, out);
    assert.match(out, /^ok neon$/m, out);
  });
