#!/usr/bin/env node
// npm run test:cuda — the CUDA parity tests (test-cuda/*.test.ts) against the CPU backend. They need a GPU and
// the built addon; without them this prints one line saying why and exits 0 without running (or passing) any test.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const addon = process.env.LONGSHOT_CUDA_ADDON ?? join(root, 'native', 'cuda', 'build', 'longshot_cuda.node');
let why = null;
if (!existsSync(addon)) why = `the CUDA addon is not built (${addon}); run "npm run build:native"`;
else {
  try {
    createRequire(import.meta.url)(addon).init();
  } catch (e) {
    why = `no usable GPU: ${e.message}`;
  }
}
if (why) {
  console.log(`test:cuda: NOT RUN — ${why}.`);
  process.exit(0);
}
const r = spawnSync(process.execPath, [join(root, 'scripts', 'run-tests.mjs'), ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, LONGSHOT_TEST_DIR: join(root, 'test-cuda') },
});
process.exit(r.status ?? 1);
