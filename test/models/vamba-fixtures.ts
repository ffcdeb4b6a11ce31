/** Reads the PyTorch reference fixtures made by tools/reference/vamba_fixtures.py. */
import { join } from 'node:path';
import { cpuBackend } from '../../src/backends/cpu/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { boundEdges } from '../../src/media/resize.js';
import { openVideo } from '../../src/media/video.js';
import type { Vamba } from '../../src/models/vamba/model.js';
import { encodeVideoFrames, type VambaFramesOptions } from '../../src/models/vamba/video.js';
import type { VambaVideoHandle } from '../../src/models/vamba/video-handle.js';

export const VAMBA_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'vamba');

export interface VambaReference {
  pixelValues: Float32Array;
  grid: [number, number, number];
  inputIds: number[];
  logits: Float32Array;
  greedyTokens: number[];
  stepLogits: Float32Array;
  vocab: number;
}

export async function readReference(name: string): Promise<VambaReference> {
  const f = await SafetensorsFile.open(join(VAMBA_FIXTURES, name, 'reference.safetensors'));
  try {
    const be = cpuBackend();
    const get = async (n: string) => {
      const t = await f.loadTensor(be, n);
      try {
        return await t.data();
      } finally {
        t.dispose();
      }
    };
    const grid = Array.from(await get('video_grid_thw'));
    return {
      pixelValues: (await get('pixel_values')) as Float32Array,
      grid: [grid[0], grid[1], grid[2]],
      inputIds: Array.from(await get('input_ids')),
      logits: (await get('logits')) as Float32Array,
      greedyTokens: Array.from(await get('greedy_tokens')),
      stepLogits: (await get('step_logits')) as Float32Array,
      vocab: f.info('logits').shape[1],
    };
  } finally {
    await f.close();
  }
}

export { relErr } from '../helpers.js';

/** A video file decoded as the facade does (uniform frames, Vamba's pre-resize), then Vamba's encoding. */
export async function encodeVideoFile(
  model: Vamba,
  path: string,
  o: Omit<VambaFramesOptions, 'sampling' | 'input'>,
): Promise<VambaVideoHandle> {
  await using video = await openVideo(path);
  const sample = await video.sample({ kind: 'uniform', numFrames: o.frames });
  const frames = video.frames(sample, { size: boundEdges(o.shortestEdge, o.longestEdge) });
  return encodeVideoFrames(model, frames, { ...o, sampling: 'uniform', input: path });
}
