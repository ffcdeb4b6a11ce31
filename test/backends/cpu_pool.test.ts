// The worker pool: sizing from the environment, and a process that used it exits on its own (unref'd workers).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { cpuThreads } from '../../src/backends/cpu/pool.js';

test('cpuThreads: LONGSHOT_CPU_THREADS when it is a positive integer, else the machine', () => {
  const saved = process.env.LONGSHOT_CPU_THREADS;
  try {
    process.env.LONGSHOT_CPU_THREADS = '3';
    assert.equal(cpuThreads(), 3);
    for (const bad of ['0', 'many', '1.5']) {
      process.env.LONGSHOT_CPU_THREADS = bad;
      assert.equal(cpuThreads(), availableParallelism());
    }
  } finally {
    if (saved === undefined) delete process.env.LONGSHOT_CPU_THREADS;
    else process.env.LONGSHOT_CPU_THREADS = saved;
  }
});

test('a script whose GEMM ran on worker threads exits by itself with the right answer', () => {
  const src = new URL('../../src/', import.meta.url).href;
  const script = `
    const { cpuBackend } = await import('${src}backends/cpu/index.ts');
    const { parallelCalls, warmUp } = await import('${src}backends/cpu/pool.ts');
    const ops = await import('${src}runtime/ops.ts');
    const cpu = cpuBackend();
    await warmUp();
    const n = 160;
    const a = ops.tensor(cpu, Float32Array.from({ length: n * n }, (_, i) => (i % 7) - 3), [n, n]);
    const c = await ops.matmul(a, a).data();
    let ref = 0;
    for (let t = 0; t < n; t++) ref += (((5 * n + t) % 7) - 3) * (((t * n + 9) % 7) - 3);
    console.log(JSON.stringify({ split: parallelCalls(), got: c[5 * n + 9], ref }));`;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, LONGSHOT_CPU_THREADS: '2' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(out.got, out.ref);
  assert.ok(out.split >= 1, 'the GEMM was split across the main thread and a worker');
  assert.ok(Date.now() - t0 < 30_000);
});
