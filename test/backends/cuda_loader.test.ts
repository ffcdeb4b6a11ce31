// The CUDA backend's JS side, checked without a GPU: device selection fails with a clear, typed error, and the
// addon's out-of-memory errors become OutOfMemoryError (exit code 5) and device-found bad arguments ShapeError,
// while other errors pass through.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../src/index.js';
import { loadAddon } from '../../src/backends/cuda/addon.js';
import { OutOfMemoryError } from '../../src/errors.js';
import { DeviceUnavailableError, getBackend } from '../../src/runtime/device.js';
import { ShapeError } from '../../src/runtime/shape.js';

test("getBackend('cuda') gives a backend on a GPU machine, else DeviceUnavailableError saying what to do", async () => {
  try {
    const b = await getBackend('cuda');
    assert.equal(b.name, 'cuda');
  } catch (e) {
    assert.ok(e instanceof DeviceUnavailableError, `got ${(e as Error).name}: ${(e as Error).message}`);
    assert.match((e as Error).message, /^cuda: .*(npm run build:native|nvidia-smi).*--device cpu/);
  }
  // 'auto' falls back to the CPU when CUDA is unavailable.
  assert.ok(['cuda', 'cpu'].includes((await getBackend('auto')).name));
});

test('addon errors: OOM → OutOfMemoryError, bad argument → ShapeError, others unchanged', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'longshot-addon-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fake = join(dir, 'fake.cjs');
  writeFileSync(
    fake,
    `exports.alloc = (n) => { const e = new Error('CUDA out of memory: requested ' + n); e.code = 'ERR_LONGSHOT_OOM'; throw e; };
     exports.release = () => { throw new RangeError('bad pointer'); };
     exports.download = () => { const e = new Error('embedding: id 7 is outside the vocabulary of 5'); e.code = 'ERR_LONGSHOT_ARGUMENT'; throw e; };
     exports.memory = () => [1, 2, 3];`,
  );
  const addon = loadAddon(fake);
  assert.throws(
    () => addon.alloc(123),
    (e: unknown) => e instanceof OutOfMemoryError && e.kind === 'oom' && /requested 123/.test(e.message),
  );
  assert.throws(() => addon.release(0), RangeError);
  assert.throws(
    () => addon.download(0, new Uint8Array(1)),
    (e: unknown) => e instanceof ShapeError && /id 7 is outside the vocabulary/.test(e.message),
  );
  assert.deepEqual(addon.memory(), [1, 2, 3]);
});
