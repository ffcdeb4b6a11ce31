/**
 * A checkpoint directory of Vamba-7B's architecture with random bf16 weights, for benchmarks that load models
 * by path in other processes (bench/batch_scaling.ts's `longshot worker`s). The weights are a tile of random
 * values repeated (cheap to write, same shapes and cost as a real checkpoint); the tokenizer and special token
 * ids are the tiny needle model's (answers are noise, so only their length matters).
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeShardedCheckpoint } from '../src/io/sharded-write.js';
import { parseQwen2VLConfig } from '../src/models/qwen2vl/config.js';
import { vambaConfigJson } from '../src/models/vamba/convert.js';
import { vambaSpecs } from '../src/models/vamba/weights.js';
import { numelOf } from '../src/nn/params.js';
import { Random } from '../src/util/random.js';

const ROOT = join(import.meta.dirname, '..');
const TOKENIZER_FROM = join(ROOT, 'models/needle-vamba-tiny');
const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'preprocessor_config.json',
  'generation_config.json',
];
const TILE = 1 << 20;

/** bf16 bits of uniform values in ±0.02 (the upper half of an f32). */
function randomTile(seed: number): Uint16Array {
  const rng = new Random(seed);
  const f = new Float32Array(TILE);
  for (let i = 0; i < TILE; i++) f[i] = (rng.next() * 2 - 1) * 0.02;
  return new Uint16Array(new Uint32Array(f.buffer).map((b) => b >>> 16));
}

/**
 * Writes config.json, tokenizer files and model*.safetensors of a Vamba made from a Qwen2-VL config.json
 * (default: Qwen2-VL-7B-Instruct's, so Vamba-7B); returns the checkpoint's bytes.
 */
export async function writeRandomVamba(
  dir: string,
  qwen2vlConfig = join(ROOT, 'test/fixtures/configs/qwen2vl-7b-instruct/config.json'),
): Promise<number> {
  const read = async (p: string) => JSON.parse(await readFile(p, 'utf8'));
  const qwen2vl = await read(qwen2vlConfig);
  const tiny = await read(join(TOKENIZER_FROM, 'config.json'));
  // Same shapes as Vamba-7B; the token ids the tiny tokenizer uses.
  const ids = [
    'bos_token_id',
    'eos_token_id',
    'pad_token_id',
    'vision_start_token_id',
    'vision_end_token_id',
  ];
  const idsToo = ['vision_token_id', 'image_token_id', 'video_token_id'];
  const json = vambaConfigJson({
    ...qwen2vl,
    ...Object.fromEntries([...ids, ...idsToo].map((k) => [k, tiny[k]])),
    torch_dtype: 'bfloat16',
  });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(json, null, 2));
  for (const f of TOKENIZER_FILES) await copyFile(join(TOKENIZER_FROM, f), join(dir, f));
  const tile = randomTile(1);
  const entries = vambaSpecs(parseQwen2VLConfig(json)).map(
    (s, k) =>
      [
        s.name,
        {
          dtype: 'BF16' as const,
          shape: s.shape,
          load: async () => {
            // The tile rotated to a phase of its own, so tensors differ.
            const start = (k * 7919) % TILE;
            const own = new Uint16Array(TILE);
            own.set(tile.subarray(start));
            own.set(tile.subarray(0, start), TILE - start);
            const data = new Uint16Array(numelOf(s.shape));
            for (let i = 0; i < data.length; i += TILE)
              data.set(own.subarray(0, Math.min(TILE, data.length - i)), i);
            return { dtype: 'BF16' as const, shape: s.shape, data };
          },
        },
      ] as const,
  );
  return (await writeShardedCheckpoint(dir, entries, 4 << 30)).bytes;
}
