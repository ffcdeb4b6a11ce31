import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CpuBackend } from '../../src/backends/cpu/index.js';
import { ModelError } from '../../src/errors.js';
import { Checkpoint, SafetensorsFile, saveSafetensors } from '../../src/io/index.js';
import { tensor } from '../../src/runtime/ops.js';

const dir = await mkdtemp(join(tmpdir(), 'longshot-st-'));
after(() => rm(dir, { recursive: true, force: true }));

/**
 * An independent encoder written from the format description: 8-byte LE length, JSON, raw bytes.
 * `entries` give explicit offsets so tests can build corrupt files.
 */
function handMade(
  entries: Record<string, { dtype: string; shape: number[]; offsets: [number, number] }>,
  data: Uint8Array,
  metadata?: Record<string, string>,
): Uint8Array {
  const obj: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  for (const [k, e] of Object.entries(entries))
    obj[k] = { dtype: e.dtype, shape: e.shape, data_offsets: e.offsets };
  const json = Buffer.from(JSON.stringify(obj), 'utf8');
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  out.set(data, 8 + json.length);
  return out;
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const concat = (...parts: ArrayBufferView[]) => Buffer.concat(parts.map(bytesOf));

// Reference values with bit patterns from the IEEE / bfloat16 definitions.
const F32 = new Float32Array([1.5, -2, 0.1, 3e38]);
const BF16 = new Uint16Array([0x3f80, 0xc040, 0x7f80, 0x0000]); // 1, -3, +inf, 0
const F16 = new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff]); // 1, -2, 2^-24, 65504
const I64 = new BigInt64Array([0n, -1n, 2147483647n, -2147483648n, 151656n, 7n]);
const I32 = new Int32Array([5, -6]);
const U8 = new Uint8Array([0, 200, 255]);
const BOOL = new Uint8Array([1, 0, 1, 1]);

async function allDtypesFile(): Promise<string> {
  // Offsets are laid out by hand: F32 16 B, BF16 8, F16 8, I64 48, I32 8, U8 3, BOOL 4.
  const data = concat(F32, BF16, F16, I64, I32, U8, BOOL);
  const file = handMade(
    {
      f32: { dtype: 'F32', shape: [2, 2], offsets: [0, 16] },
      bf16: { dtype: 'BF16', shape: [4], offsets: [16, 24] },
      f16: { dtype: 'F16', shape: [4], offsets: [24, 32] },
      i64: { dtype: 'I64', shape: [2, 3], offsets: [32, 80] },
      i32: { dtype: 'I32', shape: [2], offsets: [80, 88] },
      u8: { dtype: 'U8', shape: [3], offsets: [88, 91] },
      bool: { dtype: 'BOOL', shape: [2, 2], offsets: [91, 95] },
      empty: { dtype: 'F32', shape: [0, 3], offsets: [95, 95] },
    },
    data,
    { format: 'pt' },
  );
  const p = join(dir, 'all.safetensors');
  await writeFile(p, file);
  return p;
}

test('reads every dtype of a hand-made file, one tensor at a time, with its metadata', async () => {
  await using f = await SafetensorsFile.open(await allDtypesFile());
  assert.deepEqual(f.names().sort(), ['bf16', 'bool', 'empty', 'f16', 'f32', 'i32', 'i64', 'u8']);
  assert.deepEqual(f.metadata, { format: 'pt' });
  assert.deepEqual(f.info('i64').shape, [2, 3]);
  assert.deepEqual([...(await f.read('f32')).data], [...F32]);
  assert.deepEqual([...(await f.read('bf16')).data], [...BF16]);
  assert.deepEqual([...(await f.read('i64')).data], [...I64]);
  assert.deepEqual([...(await f.read('bool')).data], [...BOOL]);
  assert.equal((await f.read('empty')).data.length, 0);
});

test('loads into backend tensors with the documented dtype conversions', async () => {
  const be = new CpuBackend();
  await using f = await SafetensorsFile.open(await allDtypesFile());
  const load = async (name: string, dtype?: 'f32' | 'bf16' | 'f16' | 'i32' | 'u8') => {
    const t = await f.loadTensor(be, name, { dtype });
    const out = { dtype: t.dtype, shape: t.shape, raw: [...(await t.raw())] };
    t.dispose();
    return out;
  };
  // Defaults keep the stored type.
  assert.deepEqual(await load('bf16'), { dtype: 'bf16', shape: [4], raw: [...BF16] });
  assert.deepEqual(await load('f32'), { dtype: 'f32', shape: [2, 2], raw: [...F32] });
  assert.deepEqual(await load('i64'), {
    dtype: 'i32',
    shape: [2, 3],
    raw: [0, -1, 2147483647, -2147483648, 151656, 7],
  });
  assert.deepEqual(await load('bool'), { dtype: 'u8', shape: [2, 2], raw: [1, 0, 1, 1] });
  assert.deepEqual((await load('u8')).raw, [0, 200, 255]);
  // Float conversions.
  assert.deepEqual((await load('bf16', 'f32')).raw, [1, -3, Number.POSITIVE_INFINITY, 0]);
  assert.deepEqual((await load('f16', 'f32')).raw, [1, -2, 2 ** -24, 65504]);
  // f32 → bf16: 1.5 = 0x3fc0, -2 = 0xc000, 0.1 = 0x3dcccccd → rounds to 0x3dcd, 3e38 = 0x7f61b1e6 → 0x7f62.
  assert.deepEqual((await load('f32', 'bf16')).raw, [0x3fc0, 0xc000, 0x3dcd, 0x7f62]);
  // f32 → f16: 3e38 overflows to +inf (0x7c00); 0.1 → 0x2e66.
  assert.deepEqual((await load('f32', 'f16')).raw, [0x3e00, 0xc000, 0x2e66, 0x7c00]);
  assert.deepEqual((await load('i32', 'f32')).raw, [5, -6]);
  assert.equal(be.memory().current, 0, 'every loaded tensor was released');
  await assert.rejects(load('f32', 'i32'), /f32 tensor "?f32"?|cannot load F32 tensor as i32/);
  await assert.rejects(load('i32', 'u8'), /value -6 at index 1 does not fit u8/);
  await assert.rejects(
    f.read('nope'),
    (e) => e instanceof ModelError && /no tensor named "nope"/.test(e.message),
  );
});

test('an I64 value outside the i32 range is refused, naming file, tensor and value', async () => {
  const p = join(dir, 'big-i64.safetensors');
  await writeFile(
    p,
    handMade(
      { ids: { dtype: 'I64', shape: [2], offsets: [0, 16] } },
      concat(new BigInt64Array([1n, 2n ** 31n])),
    ),
  );
  await using f = await SafetensorsFile.open(p);
  await assert.rejects(
    f.loadTensor(new CpuBackend(), 'ids'),
    (e) =>
      e instanceof ModelError &&
      e.message.includes(p) &&
      /"ids".*2147483648 at index 1 overflows i32/.test(e.message),
  );
});

test('writes every dtype and runtime tensors, streaming; the bytes follow the format', async () => {
  const be = new CpuBackend();
  const t = tensor(be, [0.5, -1, 2, 4], [2, 2], 'bf16');
  const p = join(dir, 'written.safetensors');
  await saveSafetensors(
    p,
    {
      f32: { dtype: 'F32', shape: [2, 2], data: F32 },
      i64: { dtype: 'I64', shape: [6], data: I64 },
      bool: { dtype: 'BOOL', shape: [4], data: BOOL },
      u8: { dtype: 'U8', shape: [3], data: U8 },
      f16: { dtype: 'F16', shape: [4], data: F16 },
      i32: { dtype: 'I32', shape: [1, 2], data: I32 },
      runtime: t,
    },
    { metadata: { video: 'abc.mp4', frames: '512' } },
  );
  t.dispose();
  // Parse the written bytes independently.
  const buf = await readFile(p);
  const n = Number(buf.readBigUInt64LE(0));
  assert.equal(n % 8, 0, 'header padded to 8 bytes');
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  assert.deepEqual(header.__metadata__, { video: 'abc.mp4', frames: '512' });
  assert.deepEqual(header.runtime, { dtype: 'BF16', shape: [2, 2], data_offsets: [80, 88] });
  const at = (name: string) =>
    buf.subarray(8 + n + header[name].data_offsets[0], 8 + n + header[name].data_offsets[1]);
  assert.deepEqual(
    new Uint16Array(new Uint8Array(at('runtime')).buffer),
    new Uint16Array([0x3f00, 0xbf80, 0x4000, 0x4080]),
  );
  assert.deepEqual(new BigInt64Array(new Uint8Array(at('i64')).buffer), I64);
  assert.equal(buf.length, 8 + n + 95);
  // And it reads back through the reader.
  await using f = await SafetensorsFile.open(p);
  assert.deepEqual([...(await f.read('f16')).data], [...F16]);
  assert.deepEqual([...(await f.read('bool')).data], [...BOOL]);
  assert.deepEqual(f.info('i32').shape, [1, 2]);
  await assert.rejects(
    saveSafetensors(join(dir, 'bad.safetensors'), { x: { dtype: 'F32', shape: [3], data: F32 } }),
    /"x": 16 bytes of data for shape \[3\] of F32 \(needs 12\)/,
  );
  const u8 = { dtype: 'U8', shape: [3], data: U8 } as const;
  await assert.rejects(
    saveSafetensors(join(dir, 'dup.safetensors'), [
      ['a', u8],
      ['a', u8],
    ]),
    /duplicate or reserved tensor name "a"/,
  );
});

test('reads a tensor past the 4 GiB mark of a (sparse) 5 GB file without reading the rest', async () => {
  const big = 5_000_000_000;
  const header = handMade(
    {
      filler: { dtype: 'U8', shape: [big], offsets: [0, big] },
      tail: { dtype: 'F32', shape: [2], offsets: [big, big + 8] },
    },
    new Uint8Array(0),
  );
  const p = join(dir, 'sparse.safetensors');
  const fs = await import('node:fs/promises');
  const h = await fs.open(p, 'w');
  await h.write(header, 0, header.length, 0);
  await h.write(bytesOf(new Float32Array([7.5, -0.25])), 0, 8, header.length + big);
  await h.close();
  try {
    const started = performance.now();
    await using f = await SafetensorsFile.open(p);
    assert.equal(f.size, header.length + big + 8);
    const t = await f.loadTensor(new CpuBackend(), 'tail');
    assert.deepEqual(await t.toArray(), [7.5, -0.25]);
    t.dispose();
    assert.ok(performance.now() - started < 2000, 'only the header and the tensor were read');
  } finally {
    await rm(p);
  }
});

async function expectRefused(name: string, bytes: Uint8Array, pattern: RegExp) {
  const p = join(dir, name);
  await writeFile(p, bytes);
  await assert.rejects(SafetensorsFile.open(p), (e) => {
    assert.ok(e instanceof ModelError, `expected ModelError, got ${e}`);
    assert.ok(e.message.includes(p), `message names the file: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('refuses a truncated file, naming the file and the tensor', async () => {
  const p = await allDtypesFile();
  const full = await readFile(p);
  await expectRefused('trunc.safetensors', full.subarray(0, full.length - 2), /tensor "bool".*truncated/);
  await expectRefused('trunc-header.safetensors', full.subarray(0, 40), /truncated.*header says \d+ bytes/);
  await expectRefused('tiny.safetensors', full.subarray(0, 5), /shorter than the 8-byte header length/);
  // The same check through the truncate syscall on a copy, as a partial download would leave it.
  const q = join(dir, 'trunc2.safetensors');
  await writeFile(q, full);
  await truncate(q, full.length - 50);
  await assert.rejects(SafetensorsFile.open(q), /truncated/);
});

test('refuses headers pointing outside the file, overlapping tensors, wrong sizes and bad JSON', async () => {
  const data = new Uint8Array(16);
  await expectRefused(
    'outside.safetensors',
    handMade({ w: { dtype: 'F32', shape: [8], offsets: [0, 32] } }, data),
    /tensor "w": data ends at byte \d+ but the file has \d+ bytes/,
  );
  await expectRefused(
    'overlap.safetensors',
    handMade(
      {
        a: { dtype: 'F32', shape: [3], offsets: [0, 12] },
        b: { dtype: 'F32', shape: [2], offsets: [8, 16] },
      },
      data,
    ),
    /tensors "a" \(bytes \d+–\d+\) and "b" \(bytes \d+–\d+\) overlap/,
  );
  await expectRefused(
    'size.safetensors',
    handMade({ w: { dtype: 'BF16', shape: [2, 3], offsets: [0, 16] } }, data),
    /tensor "w": 16 bytes of data, but shape \[2, 3\] of BF16 needs 12 bytes/,
  );
  await expectRefused(
    'dtype.safetensors',
    handMade({ w: { dtype: 'Q4', shape: [2], offsets: [0, 2] } }, data),
    /tensor "w": unknown dtype "Q4"/,
  );
  const badJson = Buffer.alloc(8 + 5 + 4);
  badJson.writeBigUInt64LE(5n, 0);
  badJson.write('{"a":', 8);
  await expectRefused('json.safetensors', badJson, /not valid UTF-8 JSON/);
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(2n ** 40n, 0);
  await expectRefused('huge.safetensors', huge, /over the 100000000-byte limit/);
  await assert.rejects(SafetensorsFile.open(join(dir, 'absent.safetensors')), /safetensors file not found/);
});

test('sharded checkpoint: index + shards, listing, loading, missing shards and tensors', async () => {
  const ck = join(dir, 'sharded');
  await import('node:fs/promises').then((fs) => fs.mkdir(ck));
  await saveSafetensors(join(ck, 'model-00001-of-00002.safetensors'), {
    'model.embed_tokens.weight': { dtype: 'BF16', shape: [2, 2], data: BF16 },
    'model.layers.0.alpha': { dtype: 'F32', shape: [1], data: new Float32Array([0.25]) },
  });
  await saveSafetensors(join(ck, 'model-00002-of-00002.safetensors'), {
    'lm_head.weight': { dtype: 'F32', shape: [2, 2], data: F32 },
  });
  const index = {
    metadata: { total_size: 28 },
    weight_map: {
      'model.embed_tokens.weight': 'model-00001-of-00002.safetensors',
      'model.layers.0.alpha': 'model-00001-of-00002.safetensors',
      'lm_head.weight': 'model-00002-of-00002.safetensors',
    },
  };
  await writeFile(join(ck, 'model.safetensors.index.json'), JSON.stringify(index));
  {
    await using c = await Checkpoint.open(ck);
    assert.deepEqual(c.names().sort(), [
      'lm_head.weight',
      'model.embed_tokens.weight',
      'model.layers.0.alpha',
    ]);
    assert.equal(c.files.length, 2);
    assert.equal(c.metadata.total_size, 28);
    assert.equal(c.bytes, 8 + 4 + 16);
    assert.match(c.info('lm_head.weight').file, /model-00002-of-00002\.safetensors$/);
    const t = await c.loadTensor(new CpuBackend(), 'model.layers.0.alpha');
    assert.deepEqual(await t.toArray(), [0.25]);
    t.dispose();
    const e = await c.loadTensor(new CpuBackend(), 'model.embed_tokens.weight', { dtype: 'f32' });
    assert.deepEqual(await e.toArray(), [1, -3, Number.POSITIVE_INFINITY, 0]);
    e.dispose();
    await assert.rejects(c.read('model.norm.weight'), /no tensor named "model.norm.weight"/);
  }
  // A tensor the index promises but the shard lacks.
  await writeFile(
    join(ck, 'model.safetensors.index.json'),
    JSON.stringify({
      weight_map: { ...index.weight_map, 'model.norm.weight': 'model-00002-of-00002.safetensors' },
    }),
  );
  await assert.rejects(Checkpoint.open(ck), /"model.norm.weight" \(in model-00002-of-00002.safetensors\)/);
  // Missing shards are all listed.
  await writeFile(
    join(ck, 'model.safetensors.index.json'),
    JSON.stringify({
      weight_map: {
        a: 'model-00001-of-00004.safetensors',
        b: 'model-00003-of-00004.safetensors',
        c: 'model-00001-of-00002.safetensors',
      },
    }),
  );
  await assert.rejects(
    Checkpoint.open(ck),
    (e) =>
      e instanceof ModelError &&
      /2 of 3 shard\(s\).*missing: model-00001-of-00004.safetensors, model-00003-of-00004.safetensors/.test(
        e.message,
      ),
  );
  await writeFile(join(ck, 'model.safetensors.index.json'), '{"weight_map": [');
  await assert.rejects(Checkpoint.open(ck), /unreadable index/);
});

test('single-file checkpoint directory, and a directory without weights', async () => {
  const one = join(dir, 'single');
  const none = join(dir, 'none');
  const fs = await import('node:fs/promises');
  await fs.mkdir(one);
  await fs.mkdir(none);
  await saveSafetensors(join(one, 'model.safetensors'), { w: { dtype: 'U8', shape: [3], data: U8 } });
  await using c = await Checkpoint.open(one);
  assert.deepEqual(c.names(), ['w']);
  await writeFile(join(none, 'adapter.safetensors'), '');
  await assert.rejects(
    Checkpoint.open(none),
    /missing model.safetensors and model.safetensors.index.json \(found adapter.safetensors\)/,
  );
  await assert.rejects(Checkpoint.open(join(dir, 'nowhere')), /checkpoint not found/);
});
