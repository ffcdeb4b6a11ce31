/** Reads the PyTorch reference fixtures made by tools/reference/qwen2vl_fixtures.py. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import type { Qwen2VLInputs } from '../../src/models/qwen2vl/model.js';
import type { GridTHW } from '../../src/models/qwen2vl/vision.js';

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'qwen2vl');

export type Arrays = Map<string, { shape: readonly number[]; data: Float32Array | Int32Array | Uint8Array }>;

export async function readArrays(path: string): Promise<Arrays> {
  const f = await SafetensorsFile.open(path);
  try {
    const out: Arrays = new Map();
    for (const name of f.names()) {
      const t = await f.read(name);
      out.set(name, { shape: t.shape, data: t.data as Float32Array | Int32Array | Uint8Array });
    }
    return out;
  } finally {
    await f.close();
  }
}

export const readJson = async (path: string) => JSON.parse(await readFile(path, 'utf8'));

export function grids(a: Arrays, key: string): GridTHW[] {
  const g = a.get(key)!;
  const out: GridTHW[] = [];
  for (let i = 0; i < g.shape[0]; i++) out.push([g.data[3 * i], g.data[3 * i + 1], g.data[3 * i + 2]]);
  return out;
}

/** The model inputs of a fixture prompt (video, image, mixed or text) from the processor outputs. */
export function fixtureInputs(prompt: string, ids: number[], proc: Arrays): Qwen2VLInputs {
  const inputs: Qwen2VLInputs = { inputIds: ids };
  if (prompt === 'video' || prompt === 'mixed') {
    inputs.pixelValuesVideos = proc.get('video.pixel_values_videos')!.data as Float32Array;
    inputs.videoGridThw = grids(proc, 'video.video_grid_thw');
  }
  const image = prompt === 'image' ? 'image' : prompt === 'mixed' ? 'image2' : null;
  if (image) {
    inputs.pixelValues = proc.get(`${image}.pixel_values`)!.data as Float32Array;
    inputs.imageGridThw = grids(proc, `${image}.image_grid_thw`);
  }
  return inputs;
}

export { relErr } from '../helpers.js';
