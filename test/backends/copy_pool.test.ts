// native/cuda/copy_pool.h (the CUDA addon's threaded staging copy) built with g++ alone and checked against
// memcpy: no GPU or CUDA headers needed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('../../native/cuda/test/copy_pool_test.cpp', import.meta.url));

test('CopyPool copies every byte, and only those, with 0 to 4 workers, below and past its threshold', () => {
  const dir = mkdtempSync(join(tmpdir(), 'copy-pool-'));
  try {
    const bin = join(dir, 'copy_pool_test');
    execFileSync('g++', ['-std=c++20', '-O2', '-pthread', source, '-o', bin], { stdio: 'pipe' });
    const out = execFileSync(bin, { encoding: 'utf8' });
    assert.match(out, /^PASSED: 225 copies, 0 failure\(s\)/m, out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
