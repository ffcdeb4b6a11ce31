/**
 * Vamba memory against video length, on the CPU with the tiny test model (test/fixtures/vamba/tiny-a):
 * frames are made, patched and run through the vision tower a batch at a time (as `encodeVideoFile` does),
 * the Mamba blocks run in chunks, and one question is answered from the handle. Each length runs in its own
 * process, so its peak RSS is its own. Vamba's claim (DESIGN §6): memory grows with video tokens × hidden,
 * linearly, never with a square.
 *
 *   npx tsx bench/vamba-memory.ts [--frames 500,1000,2000] [--size 56] [--json bench/results/vamba-memory.json]
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { generateAll } from '../src/generate/index.js';
import { Vamba } from '../src/models/vamba/model.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';

const { values } = parseArgs({
  options: {
    frames: { type: 'string', default: '500,1000,2000' },
    size: { type: 'string', default: '56' },
    json: { type: 'string', default: 'bench/results/vamba-memory.json' },
    child: { type: 'string' },
  },
});
const MODEL = join(import.meta.dirname, '..', 'test', 'fixtures', 'vamba', 'tiny-a');

interface Row {
  frames: number;
  videoTokens: number;
  backendPeakMiB: number;
  handleMiB: number;
  maxRssMiB: number;
  seconds: number;
  answer: number[];
}

/** One length, in this process. */
async function measure(frames: number, side: number): Promise<Row> {
  const be = cpuBackend();
  const model = await Vamba.load(MODEL, { backend: be });
  const t0 = performance.now();
  be.resetPeak();
  const patch = model.config.vision.patch_size;
  const grid = side / patch;
  const rowLen = model.visual.patchDim;
  const groupsPerBatch = 8;
  const pieces: Tensor[] = [];
  let seed = 1;
  for (let g0 = 0; g0 < frames / 2; g0 += groupsPerBatch) {
    const g = Math.min(groupsPerBatch, frames / 2 - g0);
    const pixels = new Float32Array(g * grid * grid * rowLen);
    for (let i = 0; i < pixels.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      pixels[i] = seed / 2 ** 31 - 1;
    }
    pieces.push(model.embedVideo(pixels, [g, grid, grid]));
  }
  const V = ops.concat(pieces, 0);
  for (const p of pieces) p.dispose();
  const merged = grid / model.config.vision.spatial_merge_size;
  using handle = model.encodeVideoTokens(
    V,
    [frames / 2, merged, merged],
    {
      model: model.modelId,
      video: `synthetic:${frames}`,
      sampling: 'all',
      size: `${side}x${side}`,
      dtype: 'f32',
    },
    2048,
  );
  using session = model.session(handle);
  const { tokens } = await generateAll(session, [302, 10, 301, 302, 310, 311, 20, 30, 301, 302], {
    maxNewTokens: 8,
  });
  const row: Row = {
    frames,
    videoTokens: handle.tokens,
    backendPeakMiB: be.memory().peak / 2 ** 20,
    handleMiB: handle.bytes / 2 ** 20,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    seconds: (performance.now() - t0) / 1000,
    answer: tokens,
  };
  model[Symbol.dispose]();
  return row;
}

if (values.child) {
  const [frames, side] = values.child.split(',').map(Number);
  process.stdout.write(`${JSON.stringify(await measure(frames, side))}\n`);
} else {
  const side = Number(values.size);
  const rows: Row[] = [];
  for (const f of values.frames!.split(',').map(Number)) {
    if (f % 2) throw new Error('--frames must be even counts');
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', import.meta.filename, '--child', `${f},${side}`],
      {
        encoding: 'utf8',
        maxBuffer: 1 << 20,
      },
    );
    if (r.status !== 0) throw new Error(r.stderr);
    rows.push(JSON.parse(r.stdout));
  }
  const base = rows[0];
  console.log(
    'frames  video tokens  backend peak MiB  handle MiB  max RSS MiB  seconds  peak/frame vs first',
  );
  for (const r of rows)
    console.log(
      `${String(r.frames).padStart(6)}  ${String(r.videoTokens).padStart(12)}  ${r.backendPeakMiB.toFixed(1).padStart(16)}  ${r.handleMiB.toFixed(1).padStart(10)}  ${r.maxRssMiB.toFixed(1).padStart(11)}  ${r.seconds.toFixed(1).padStart(7)}  ${(r.backendPeakMiB / r.frames / (base.backendPeakMiB / base.frames)).toFixed(3).padStart(19)}`,
    );
  // Linear fit of peak memory on frames: slope per frame and intercept.
  const n = rows.length;
  const mx = rows.reduce((a, r) => a + r.frames, 0) / n;
  const my = rows.reduce((a, r) => a + r.backendPeakMiB, 0) / n;
  const slope =
    rows.reduce((a, r) => a + (r.frames - mx) * (r.backendPeakMiB - my), 0) /
    rows.reduce((a, r) => a + (r.frames - mx) ** 2, 0);
  const maxResidual = Math.max(
    ...rows.map((r) => Math.abs(r.backendPeakMiB - (my + slope * (r.frames - mx)))),
  );
  console.log(
    `backend peak ≈ ${(my - slope * mx).toFixed(2)} MiB + ${(slope * 1024).toFixed(1)} KiB/frame (largest deviation from the line ${maxResidual.toFixed(3)} MiB)`,
  );
  await mkdir(dirname(values.json!), { recursive: true });
  await writeFile(values.json!, `${JSON.stringify({ side, rows, slopeMiBPerFrame: slope }, null, 2)}\n`);
}
