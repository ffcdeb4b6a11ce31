/**
 * The MambaMia benchmark (issue 19), random bf16 weights made on the GPU (RandomWeights through the checked
 * loaders), one process:
 *
 *   1. The compressor alone (the derivative's sizes: hidden 3072, 2 bidirectional gated blocks, d_state 128, ~116 M
 *      parameters; input 1152 as SigLIP's, output 3584 as Qwen2-7B's; s = 1/3): frames/s and patch tokens/s at 1k
 *      and 10k frames of 100 patches (k = 10, the paper's) and 729 patches (SigLIP's 27×27, k = 27). A clip is one
 *      sequence when it fits; otherwise it is compressed in windows of consecutive frames (halved until one fits),
 *      and the row says so.
 *   2. End to end, TSTAR (Qwen2-VL-7B's vision tower → that compressor with input 3584 → Qwen2-7B) against
 *      Qwen2-VL-7B (the same tower and decoder, the video's tokens in the sequence) on the same videos of 280×280
 *      frames (100 merged tokens per 2 frames): vision, compression and LLM prefill time to the first token, the
 *      tokens per video, and peak memory.
 *
 *   npx tsx bench/mambamia.ts --out $OUT/mambamia         # the GPU machine (bench/gpu/mambamia.sh)
 *   npx tsx bench/mambamia.ts --tiny                        # tiny configs on the CPU (smoke test)
 *   options: --frames 1000,10000 --e2e-frames 128,512,1024 --budget 140 (s for both parts) --out DIR
 * Writes DIR/mambamia.json and DIR/mambamia.md.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/backends/cuda/index.js';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { OutOfMemoryError } from '../src/errors.js';
import { RandomWeights } from '../src/io/random-weights.js';
import type { MambaMiaCompressor } from '../src/models/mambamia/compressor.js';
import { type MambaMiaConfig, parseMambaMiaConfig } from '../src/models/mambamia/config.js';
import { loadMambaMiaCompressor } from '../src/models/mambamia/weights.js';
import { parseQwen2VLConfig } from '../src/models/qwen2vl/config.js';
import { Qwen2VL } from '../src/models/qwen2vl/model.js';
import { encodeVisionStream, type GridTHW } from '../src/models/qwen2vl/vision.js';
import { loadQwen2VLParams, qwen2vlSpecs } from '../src/models/qwen2vl/weights.js';
import { parseTstarConfig } from '../src/models/tstar/config.js';
import { qwen2LanguageModel } from '../src/models/tstar/language-model.js';
import { Tstar } from '../src/models/tstar/model.js';
import type { Backend } from '../src/runtime/backend.js';
import { getBackend } from '../src/runtime/device.js';
import * as ops from '../src/runtime/ops.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { Random } from '../src/util/random.js';

const { values: args } = parseArgs({
  options: {
    tiny: { type: 'boolean', default: false },
    frames: { type: 'string' },
    'e2e-frames': { type: 'string' },
    budget: { type: 'string' },
    out: { type: 'string' },
  },
});
const TINY = args.tiny;
const ROOT = join(import.meta.dirname, '..');
const FRAMES = (args.frames ?? (TINY ? '12,60' : '1000,10000')).split(',').map(Number);
const E2E_FRAMES = (args['e2e-frames'] ?? (TINY ? '4,8' : '128,512,1024')).split(',').map(Number);
const BUDGET_S = Number(args.budget ?? (TINY ? 60 : 140));
const OUT = args.out ?? join(tmpdir(), 'mambamia_bench');
/** Frame side for part 2: 280 px → 20×20 patches → 10×10 merged tokens per 2 frames (tiny: 56 → 4 tokens). */
const SIDE = TINY ? 56 : 280;
const GiB = 2 ** 30;
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;

/** The compressor of part 1 (and, with other widths, part 2). */
function compressorConfig(k: number, input: number, output: number): MambaMiaConfig {
  return parseMambaMiaConfig({
    ...(TINY ? { hidden_size: 16, num_heads: 2, head_dim: 16, state_size: 8, chunk_size: 16 } : {}),
    input_size: input,
    output_size: output,
    version: 'v2',
    mambamia_gated_aggregation: true,
    mambamia_chunk_size: k,
    mambamia_frame_sampling: 1 / 3,
  });
}

async function loadCompressor(c: MambaMiaConfig, backend: Backend, dtype: 'bf16' | 'f32') {
  const { MambaMiaCompressor } = await import('../src/models/mambamia/compressor.js');
  using source = new RandomWeights(MambaMiaCompressor.specs('', c), { seed: 1 });
  return loadMambaMiaCompressor(source, c, backend, dtype, 'random');
}

/** Features of `frames` frames: one random frame repeated (the values change no timing). */
function features(
  backend: Backend,
  frames: number,
  patches: number,
  width: number,
  dtype: 'bf16' | 'f32',
): Tensor {
  const rng = new Random(3);
  const one = Float32Array.from({ length: patches * width }, () => rng.uniform(-1, 1));
  using frame = ops.tensor(backend, one, [1, patches, width], dtype);
  using zeros = ops.zeros(backend, [frames, patches, width], dtype);
  return ops.add(zeros, frame);
}

interface CompressorRow {
  frames: number;
  patches: number;
  k: number;
  status: 'ok' | 'oom' | 'skipped';
  /** Frames compressed as one sequence (the whole clip, or a window of it). */
  window?: number;
  seconds?: number;
  framesPerS?: number;
  patchTokensPerS?: number;
  tokensOut?: number;
  peakGiB?: number;
  note?: string;
}

/** Compresses `frames` frames in windows of `window` (one clip when window ≥ frames); returns the tokens out. */
async function compressClip(
  m: MambaMiaCompressor,
  backend: Backend,
  frames: number,
  patches: number,
  window: number,
  dtype: 'bf16' | 'f32',
): Promise<number> {
  let tokens = 0;
  let feats: Tensor | null = null;
  try {
    for (let f0 = 0; f0 < frames; f0 += window) {
      const n = Math.min(window, frames - f0);
      if (!feats || feats.shape[0] !== n) {
        feats?.dispose();
        feats = features(backend, n, patches, m.config.input_size, dtype);
      }
      const out = m.forward(feats);
      tokens += out.shape[0];
      out.dispose();
    }
    await backend.synchronize();
  } finally {
    feats?.dispose();
  }
  return tokens;
}

async function compressorPart(
  backend: Backend,
  dtype: 'bf16' | 'f32',
  budgetS: number,
): Promise<CompressorRow[]> {
  const rows: CompressorRow[] = [];
  for (const [patches, k] of TINY
    ? [[10, 5]]
    : [
        [100, 10],
        [729, 27],
      ]) {
    const c = compressorConfig(k, TINY ? 24 : 1152, TINY ? 32 : 3584);
    using m = await loadCompressor(c, backend, dtype);
    await compressClip(m, backend, 6, patches, 6, dtype); // warm-up
    /** The largest window that fitted (a longer clip starts there). */
    let fits = Number.POSITIVE_INFINITY;
    for (const frames of FRAMES) {
      const row: CompressorRow = { frames, patches, k, status: 'ok' };
      rows.push(row);
      if (elapsed() > budgetS) {
        Object.assign(row, { status: 'skipped', note: `the ${budgetS} s budget of this part ran out` });
        continue;
      }
      let window = Math.min(frames, fits);
      for (;;) {
        try {
          backend.resetPeak();
          const t0 = performance.now();
          const tokensOut = await compressClip(m, backend, frames, patches, window, dtype);
          const s = (performance.now() - t0) / 1000;
          Object.assign(row, {
            window,
            seconds: r3(s),
            framesPerS: Math.round(frames / s),
            patchTokensPerS: Math.round((frames * patches) / s),
            tokensOut,
            peakGiB: r3(backend.memory().peak / GiB),
          });
          break;
        } catch (e) {
          if (!(e instanceof OutOfMemoryError) || window <= 8) {
            Object.assign(row, { status: 'oom', note: (e as Error).message.slice(0, 160) });
            break;
          }
          window = Math.floor(window / 2);
          fits = window;
        }
      }
      console.log(JSON.stringify(row));
    }
  }
  return rows;
}

interface EndToEndRow {
  frames: number;
  model: 'qwen2vl' | 'tstar';
  status: 'ok' | 'oom' | 'skipped';
  videoTokens?: number;
  visionS?: number;
  compressS?: number;
  llmS?: number;
  totalS?: number;
  peakGiB?: number;
  note?: string;
}

/** Qwen2-VL-7B-Instruct's config (the tiny Vamba fixture's without its Vamba fields with --tiny). */
function qwen2vlConfig() {
  const file = TINY
    ? 'test/fixtures/vamba/tiny-a/config.json'
    : 'test/fixtures/configs/qwen2vl-7b-instruct/config.json';
  const json = JSON.parse(readFileSync(join(ROOT, file), 'utf8'));
  return Object.fromEntries(
    Object.entries(json).filter(([k]) => !/^(use_alpha|cross_attn_|distill|vision_mamba)/.test(k)),
  );
}

/** Preprocessed pixels of a video: one random temporal group, repeated, 8 groups a batch. */
function* pixelBatches(groups: number, rowsPerGroup: number, rowLen: number) {
  const rng = new Random(7);
  const group = Float32Array.from({ length: rowsPerGroup * rowLen }, () => rng.uniform(-1.8, 2.1));
  const batch = new Float32Array(8 * group.length);
  for (let i = 0; i < 8; i++) batch.set(group, i * group.length);
  for (let g = 0; g < groups; g += 8) {
    const n = Math.min(8, groups - g);
    yield { pixels: batch.subarray(0, n * group.length), groups: n };
  }
}

async function endToEndPart(
  backend: Backend,
  dtype: 'bf16' | 'f32',
  budgetS: number,
): Promise<EndToEndRow[]> {
  const json = qwen2vlConfig();
  const qc = parseQwen2VLConfig(json);
  const t0 = performance.now();
  const source = new RandomWeights(qwen2vlSpecs(qc), { seed: 1 });
  const qwen = Qwen2VL.fromParams(
    qc,
    await loadQwen2VLParams(source, qc, backend, dtype, 'random'),
    backend,
    dtype,
  );
  source[Symbol.dispose]();
  const v = qc.vision;
  const perGroup = (SIDE / v.patch_size) ** 2 / v.spatial_merge_size ** 2;
  // k = 10 of the 100 merged tokens per 2 frames (tiny: 7 of 49).
  const pc = compressorConfig(TINY ? 7 : 10, v.hidden_size, qc.text.hidden_size);
  if (perGroup % pc.mambamia_chunk_size)
    throw new Error(`k does not divide the ${perGroup} tokens per group`);
  const compressor = await loadCompressor(pc, backend, dtype);
  const textJson = Object.fromEntries(Object.entries(json).filter(([k]) => k !== 'vision_config'));
  const tc = parseTstarConfig({
    model_type: 'tstar',
    vision_config: json.vision_config,
    mm_projector_config: { ...pc },
    text_config: { ...textJson, model_type: 'qwen2' },
    video_token_id: qc.video_token_id,
  });
  // TSTAR over the same tower and decoder (disposed once, through Qwen2-VL).
  const tstar = new Tstar(tc, qwen.visual, compressor, qwen2LanguageModel(qwen.model, qc), backend, dtype);
  await backend.synchronize();
  console.log(`end to end: models ready in ${r3((performance.now() - t0) / 1000)} s`);
  const rng = new Random(11);
  const textIds = (n: number) =>
    Array.from({ length: n }, () => rng.int(1, Math.floor(qc.vision_start_token_id * 0.9)));
  const rows: EndToEndRow[] = [];
  const rowLen = v.in_channels * v.temporal_patch_size * v.patch_size ** 2;
  try {
    for (const [i, frames] of [E2E_FRAMES[0], ...E2E_FRAMES].entries()) {
      const grid: GridTHW = [frames / 2, SIDE / v.patch_size, SIDE / v.patch_size];
      const mine: EndToEndRow[] = (['qwen2vl', 'tstar'] as const).map((model) => ({
        frames,
        model,
        status: 'ok',
      }));
      if (i > 0) rows.push(...mine); // the first size runs twice: its first run warms up
      if (elapsed() > budgetS) {
        for (const r of mine)
          Object.assign(r, { status: 'skipped', note: `the ${budgetS} s budget ran out` });
        continue;
      }
      const [system, question] = [textIds(12), textIds(24)];
      for (const row of mine) {
        try {
          backend.resetPeak();
          const ta = performance.now();
          using V = encodeVisionStream(
            qwen.visual,
            pixelBatches(grid[0], grid[1] * grid[2], rowLen),
            grid,
            dtype,
          );
          await backend.synchronize();
          const tb = performance.now();
          let tc2 = tb;
          let n: number;
          if (row.model === 'qwen2vl') {
            n = V.shape[0];
            const ids = [
              ...system,
              qc.vision_start_token_id,
              ...new Array(n).fill(qc.video_token_id),
              qc.vision_end_token_id,
              ...question,
            ];
            using s = qwen.session({ capacity: ids.length + 1 });
            (await s.prefill({ inputIds: ids, videoGridThw: [grid], videoEmbeds: V }).data()).length;
          } else {
            using Q = tstar.compress(V, grid);
            await backend.synchronize();
            tc2 = performance.now();
            n = Q.shape[0];
            const ids = [
              ...system,
              qc.vision_start_token_id,
              ...new Array(n).fill(qc.video_token_id),
              qc.vision_end_token_id,
              ...question,
            ];
            using s = tstar.session(ids.length + 1);
            (await s.prefill({ ids, video: Q }).data()).length;
          }
          const td = performance.now();
          Object.assign(row, {
            videoTokens: n,
            visionS: r3((tb - ta) / 1000),
            ...(row.model === 'tstar' ? { compressS: r3((tc2 - tb) / 1000) } : {}),
            llmS: r3((td - tc2) / 1000),
            totalS: r3((td - ta) / 1000),
            peakGiB: r3(backend.memory().peak / GiB),
          });
        } catch (e) {
          if (!(e instanceof OutOfMemoryError)) throw e;
          Object.assign(row, { status: 'oom', note: e.message.slice(0, 160) });
        }
        if (i > 0) console.log(JSON.stringify(row));
      }
    }
  } finally {
    qwen[Symbol.dispose]();
    compressor[Symbol.dispose]();
  }
  return rows;
}

function markdown(device: string, a: CompressorRow[], b: EndToEndRow[]): string {
  const cell = (x: number | undefined) => (x === undefined ? '—' : x.toLocaleString('en-US'));
  const lines = [
    `# MambaMia benchmark (${device}, ${TINY ? 'f32, tiny configs' : 'bf16'})`,
    '',
    '## The compressor alone',
    '',
    'hidden 3072, 2 bidirectional gated blocks, d_state 128, input 1152, output 3584, s = 1/3; random weights.',
    '',
    '| frames | patches/frame | k | sequence | time (s) | frames/s | patch tokens/s | tokens out | peak GiB |',
    '|---:|---:|---:|---|---:|---:|---:|---:|---:|',
    ...a.map((r) =>
      r.status !== 'ok'
        ? `| ${cell(r.frames)} | ${r.patches} | ${r.k} | ${r.status}: ${r.note ?? ''} | | | | | |`
        : `| ${cell(r.frames)} | ${r.patches} | ${r.k} | ${r.window === r.frames ? 'whole clip' : `windows of ${r.window} frames`} | ${r.seconds} | ${cell(r.framesPerS)} | ${cell(r.patchTokensPerS)} | ${cell(r.tokensOut)} | ${r.peakGiB} |`,
    ),
    '',
    `## End to end: TSTAR against Qwen2-VL-7B (${SIDE}×${SIDE} frames)`,
    '',
    'Time to the first token of a 12 + video + 24 token prompt: vision tower, compressor (TSTAR), LLM prefill.',
    '',
    '| frames | model | video tokens | vision (s) | compress (s) | LLM (s) | total (s) | peak GiB |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
    ...b.map((r) =>
      r.status !== 'ok'
        ? `| ${r.frames} | ${r.model} | ${r.status}: ${r.note ?? ''} | | | | | |`
        : `| ${r.frames} | ${r.model} | ${cell(r.videoTokens)} | ${r.visionS} | ${r.compressS ?? '—'} | ${r.llmS} | ${r.totalS} | ${r.peakGiB} |`,
    ),
    '',
  ];
  return lines.join('\n');
}

async function main() {
  const backend: Backend = TINY ? cpuBackend() : await getBackend('cuda');
  const dtype = TINY ? 'f32' : 'bf16';
  const device = 'device' in backend ? (backend as { device: { name: string } }).device.name : 'cpu';
  const a = await compressorPart(backend, dtype, BUDGET_S * 0.4);
  const b = await endToEndPart(backend, dtype, BUDGET_S);
  await mkdir(OUT, { recursive: true });
  const result = { device, dtype, budgetS: BUDGET_S, compressor: a, endToEnd: b };
  await writeFile(join(OUT, 'mambamia.json'), `${JSON.stringify(result, null, 2)}\n`);
  const md = markdown(device, a, b);
  await writeFile(join(OUT, 'mambamia.md'), md);
  console.log(md);
}

await main();
