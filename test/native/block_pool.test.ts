// The CUDA caching allocator's bookkeeping (native/cuda/block_pool.h: best-fit, split, merge, empty-and-retry,
// statistics) runs on the CPU against a fake device: compiled with the host C++ compiler and run here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

test('the caching allocator merges, splits, empties and counts exactly (C++ on a fake device)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'longshot-pool-'));
  try {
    const exe = join(dir, 'block_pool_test');
    const cxx = process.env.CXX ?? 'g++';
    const build = spawnSync(
      cxx,
      ['-std=c++17', '-O1', '-I', 'native/cuda', 'native/cuda/test/block_pool_test.cpp', '-o', exe],
      {
        encoding: 'utf8',
      },
    );
    assert.ok(
      !build.error,
      `${cxx} is needed to build the allocator test (set CXX to a C++17 compiler): ${build.error?.message}`,
    );
    assert.equal(build.status, 0, build.stderr);
    const run = spawnSync(exe, { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /PASSED/);
    assert.equal(run.stdout.match(/^ok /gm)?.length, 12, run.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
