/**
 * The safe torch.save reader: a state dict written by torch.save (bf16, f16, i64, f32, a scalar, an offset view
 * and a transposed view sharing one storage) reads back as the same values as its safetensors copy (both made by
 * tools/reference/timeviper_fixtures.py); a pickle that calls anything else, and the legacy format, are refused.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ModelError } from '../../src/errors.js';
import { readTorchPickle } from '../../src/io/pickle.js';
import { PthFile } from '../../src/io/pth.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'timeviper');

describe('PthFile', () => {
  it('reads every tensor of a torch.save state dict exactly', async () => {
    await using pth = await PthFile.open(join(DIR, 'dtypes.pth'));
    await using st = await SafetensorsFile.open(join(DIR, 'dtypes.safetensors'));
    assert.deepEqual(pth.names().sort(), st.names().sort());
    assert.deepEqual(pth.names().sort(), ['bf16', 'f16', 'f32', 'f32_rows', 'f32_t', 'i64', 'scalar']);
    for (const name of st.names()) {
      const [a, b] = [await pth.read(name), await st.read(name)];
      assert.equal(a.dtype, b.dtype, name);
      assert.deepEqual(a.shape, b.shape, name);
      assert.deepEqual(
        Array.from(a.data as ArrayLike<number | bigint>),
        Array.from(b.data as ArrayLike<number | bigint>),
        name,
      );
    }
    assert.deepEqual((await pth.read('f32_t')).shape, [8, 6]);
  });

  it('refuses a pickle that would call a function, naming it', async () => {
    await assert.rejects(PthFile.open(join(DIR, 'evil.pth')), (e: Error) => {
      assert.ok(e instanceof ModelError);
      assert.match(e.message, /refuses the pickle global (posix|os)\.system/);
      return true;
    });
  });

  it('refuses the legacy (pre-1.6) format and files that are not torch.save archives', async () => {
    await assert.rejects(PthFile.open(join(DIR, 'legacy.pth')), /legacy pre-1\.6 format/);
    await assert.rejects(PthFile.open(join(DIR, 'dtypes.safetensors')), /not a zip-format torch\.save file/);
  });

  it('refuses opcodes outside the state-dict subset', () => {
    // PROTO 2, BINUNICODE "x" … then 0x69 (INST), which would construct an object.
    const bytes = Uint8Array.from([0x80, 0x02, 0x69, 0x2e]);
    assert.throws(() => readTorchPickle(bytes, 'crafted'), /refuses pickle opcode 0x69 at byte 2/);
  });
});
