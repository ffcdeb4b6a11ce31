// What `npm install` builds and what the package ships: the CUDA addon is compiled at install only where an
// NVIDIA driver is present (else on first use of --device cuda), the native CPU kernels where a C compiler
// works (never failing the install), and build outputs never go into the package.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

/** The install script in a scratch package whose driver probes are the given paths. */
function scratchPackage(probes: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'longshot-install-'));
  mkdirSync(join(dir, 'scripts'));
  mkdirSync(join(dir, 'native', 'cuda'), { recursive: true });
  copyFileSync('scripts/build-native.mjs', join(dir, 'scripts', 'build-native.mjs'));
  writeFileSync(join(dir, 'native', 'cuda', 'driver-probes.json'), JSON.stringify(probes));
  return dir;
}

const install = (dir: string, env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [join(dir, 'scripts', 'build-native.mjs'), '--optional'], {
    encoding: 'utf8',
    env: { ...process.env, LONGSHOT_BUILD_CUDA: undefined, ...env },
  });

test('npm install skips the CUDA addon in one line where no NVIDIA driver is present', (t) => {
  const dir = scratchPackage([join(tmpdir(), 'no-such-driver-file')]);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = install(dir);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stdout,
    'longshot: no NVIDIA driver found; skipping the CUDA addon (built on first use of --device cuda).\n',
  );
  assert.equal(existsSync(join(dir, 'native', 'cuda', 'build')), false);
});

test('LONGSHOT_BUILD_CUDA=0 skips the build even where a driver is present', (t) => {
  const dir = scratchPackage([]);
  writeFileSync(join(dir, 'driver'), '');
  writeFileSync(join(dir, 'native', 'cuda', 'driver-probes.json'), JSON.stringify([join(dir, 'driver')]));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = install(dir, { LONGSHOT_BUILD_CUDA: '0' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^longshot: LONGSHOT_BUILD_CUDA=0; skipping the CUDA addon/);
  assert.equal(existsSync(join(dir, 'native', 'cuda', 'build')), false);
});

test('npm install goes on in one line when the native CPU kernels cannot be compiled', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'longshot-install-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'scripts'));
  copyFileSync('scripts/build-cpu.mjs', join(dir, 'scripts', 'build-cpu.mjs'));
  cpSync('native/cpu', join(dir, 'native', 'cpu'), { recursive: true, filter: (p) => !p.endsWith('build') });
  const r = spawnSync(process.execPath, [join(dir, 'scripts', 'build-cpu.mjs'), '--optional'], {
    encoding: 'utf8',
    env: { ...process.env, CC: join(dir, 'no-such-cc') },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^longshot: the native CPU kernels failed to build .*the WebAssembly ones serve/);
  assert.equal(r.stdout.trim().split('\n').length, 1);
  assert.equal(existsSync(join(dir, 'native', 'cpu', 'build', 'longshot_cpu.node')), false);
});

test('the npm package holds the sources the addons build from and no build outputs', () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files: string[] = JSON.parse(r.stdout)[0].files.map((f: { path: string }) => f.path);
  for (const needed of [
    'bin/longshot.js',
    'scripts/build-native.mjs',
    'native/cuda/driver-probes.json',
    'native/cuda/addon.cpp',
    'scripts/build-cpu.mjs',
    'native/cpu/kernel.inc',
    'native/cpu/addon.c',
    'native/cpu/ops.inc',
    'native/cpu/gemm.wasm',
    'native/cpu/gemm-relaxed.wasm',
    'models/needle-vamba-tiny/model.safetensors',
    'recipes/needle-vamba.json', // what docs/training.md trains with
  ])
    assert.ok(files.includes(needed), `${needed} is missing from the package`);
  const junk = files.filter((f) =>
    /^native\/cuda\/(build|test)\/|^native\/cpu\/build\/|\.(o|node|tmp)$|^dist\/(?!src\/|web\/)|^test\/|^scripts\/(?!build-(native|cpu)\.mjs)/.test(
      f,
    ),
  );
  assert.deepEqual(junk, []);
});
