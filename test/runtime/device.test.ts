// Device selection: `auto` takes the first registered accelerator whose presence check passes (nothing is
// loaded to decide), and falls back to the cpu with a warning when that accelerator fails to load. A fake
// accelerator stands in for CUDA (this file registers no real one).
import '../../src/backends/cpu/index.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend } from '../../src/runtime/backend.js';
import { getBackend, registerBackend, resolveDevice } from '../../src/runtime/device.js';

const fake = { name: 'webgpu' } as Backend;

test('auto is the cpu when no accelerator is present, and the accelerator is not loaded to find out', async () => {
  let loads = 0;
  registerBackend(
    'webgpu',
    async () => {
      loads++;
      return fake;
    },
    () => false,
  );
  assert.equal(resolveDevice('auto'), 'cpu');
  assert.equal((await getBackend('auto')).name, 'cpu');
  assert.equal(loads, 0);
  assert.equal(resolveDevice('webgpu'), 'webgpu', 'a named device is taken as asked');
});

test('auto is the accelerator when it is present', async () => {
  registerBackend(
    'webgpu',
    async () => fake,
    () => true,
  );
  assert.equal(resolveDevice('auto'), 'webgpu');
  assert.equal(await getBackend('auto'), fake);
});

test('auto warns and uses the cpu when a present accelerator fails to load', async () => {
  registerBackend(
    'webgpu',
    async () => {
      throw new Error('webgpu: the adapter is lost');
    },
    () => true,
  );
  const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
  assert.equal((await getBackend('auto')).name, 'cpu');
  const warning = await warned;
  assert.match(warning.message, /^webgpu: the adapter is lost — --device auto uses the cpu$/);
  await assert.rejects(getBackend('webgpu'), /adapter is lost/);
});
